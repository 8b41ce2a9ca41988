/* cli/pending: commands whose implementation is in progress (replaced file by file). */
#include "cli/cli.h"
#include <stdio.h>
static int pending(const char *cmd) {
    fprintf(stderr, "slimclr %s: not available in this build yet\n", cmd);
    return 2;
}
int cli_bench(int argc, char **argv) { (void)argc; (void)argv; return pending("bench"); }
