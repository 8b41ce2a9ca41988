#include "core/signals.h"
#include <signal.h>
#include <string.h>

static volatile sig_atomic_t caught = 0;

/* async-signal-safe: only a store */
static void on_signal(int sig) { caught = sig; }

void signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int signals_pending(void) { return (int)caught; }
void signals_clear(void) { caught = 0; }

const char *signals_name(int sig) {
    switch (sig) {
    case 0: return "none";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
    }
}
