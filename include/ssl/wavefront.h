/* ssl/wavefront: several forward or backward passes run interleaved on the main thread, so that a pass's SyncBN
 * reduction is in flight while the others compute (the "wavefront" schedule of ssl/step.c).
 *
 * Each pass is a task: a coroutine (its own stack, planned once) that runs until its next BN reduction, starts it
 * non-blocking and gives the thread back. The tasks resume in a fixed round-robin order, each once its own
 * reduction has completed. Every rank therefore starts the same reductions in the same order, and every layer sees
 * the tasks in the order they were added: passes that accumulate into the same gradients add in the same order as
 * when run one after another (the schedule changes no bit on one rank). A reduction that completes at once (one
 * rank) does not suspend its task, so a task that never waits (local BN, one rank) runs to its end at once. With
 * more ranks every reduction suspends: whether one has completed is a rank's local view, and a rank that went on
 * would start its next reduction out of the order the others start theirs.
 *
 * Passes of one model need their own activation scratch (model_scratch_use); wf_add names it. Other collectives
 * inside a task (the key pass: shuffle BN's gathers, the start of MoCo v2's key gather and the wait for the last
 * step's) are issued at the same point of the fixed task sequence on every rank, so every rank starts its
 * collectives in the same order; a blocking one progresses the reductions in flight meanwhile. */
#ifndef SC_SSL_WAVEFRONT_H
#define SC_SSL_WAVEFRONT_H
#include "model/model.h"
#include "nn/layout.h"
#include <stdbool.h>

#define WF_MAX_TASKS 20

typedef struct wavefront wavefront;

/* SyncBN timing, cumulative: exposed = time the thread waited for a reduction (nothing else to run); in flight =
 * time during which at least one reduction was in flight (start to observed completion; overlapping reductions
 * count once); with the blocking reducer both are the calls' duration */
typedef struct {
    double exposed_s, inflight_s, doubles;
    long calls;
} wf_stats;

/* max_doubles: the largest reduction (2 C + 1 for C channels); yield: whether reductions suspend the task (false:
 * every reduction blocks, e.g. the sequential schedule timed by the same code) */
wavefront *wf_create(int max_doubles, bool yield);
void wf_free(wavefront *w);
/* The reducer tasks pass to their layers: sums over ranks (comm/), non-blocking inside a task when yield is on,
 * blocking outside one. */
const nn_reducer *wf_reducer(wavefront *w);
/* Adds a task fn(arg); while it runs, m (NULL: none) uses scratch s (s.buf NULL: the model's own). */
void wf_add(wavefront *w, void (*fn)(void *), void *arg, model *m, model_scratch_ref s);
/* Runs the added tasks to their end (round-robin, see above) and forgets them. */
void wf_run(wavefront *w);
const wf_stats *wf_get_stats(const wavefront *w);
#endif
