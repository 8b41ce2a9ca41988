/* comm/buckets: overlapped gradient allreduce over slices of the model's gradient arena (no copies).
 *
 * Buckets are contiguous ranges of the arena built from the parameter tensors in reverse order (the order
 * the backward finishes them), each about bucket_mb. The backward calls buckets_mark_ready for each
 * range as it becomes final; a bucket is launched when all its tensors are ready. A communication thread
 * with its own duplicated communicator reduces launched buckets (in place, SUM, then / P) strictly in
 * bucket order, so every rank issues the same sequence of collectives whatever order ranges are marked
 * in, while the main thread goes on computing and calling MPI on the main communicator (SyncBN, gathers).
 * Open MPI has no asynchronous progress (docs/method.md "Communication and signals"), hence the thread.
 *
 * buckets_finish launches whatever was never marked (tensors the step did not touch are reduced too, so
 * every rank reduces the same bytes), waits, and leaves the global mean in the arena.
 * Without overlap (buckets_set_overlap false, MPI without THREAD_MULTIPLE) everything is reduced in
 * buckets_finish by the calling thread: same results, for comparison. One rank: no thread, finish is a
 * no-op apart from the statistics. */
#ifndef SC_COMM_BUCKETS_H
#define SC_COMM_BUCKETS_H
#include <stdbool.h>
#include <stddef.h>

typedef struct buckets buckets;

typedef struct {
    int nbuckets;
    double bytes;        /* bytes all-reduced per rank this step */
    double comm_s;       /* sum over buckets of reduce start -> completion */
    double latency_s;    /* sum over buckets of launch (ready) -> completion */
    double max_bucket_s; /* longest single reduce */
    double exposed_s;    /* time buckets_finish waited (the communication the step could not hide) */
    double overlap;      /* 1 - exposed/comm, clamped to [0, 1]; 1 when there was no communication */
} buckets_stats;

/* COLLECTIVE (duplicates the communicator; starts the thread when P > 1 and MPI is THREAD_MULTIPLE).
 * grads[n]: global-layout arena (local pointer); tensor_off/count[ntensors]: global (same on every rank),
 * any order, non-overlapping, inside [0, n). bucket_mb: global target size (<= 0: one bucket). */
buckets *buckets_create(float *grads, size_t n, const size_t *tensor_off, const size_t *tensor_count, int ntensors,
                        double bucket_mb);
void buckets_free(buckets *b); /* COLLECTIVE */

/* Local. Overlap on by default; off = every reduce happens in buckets_finish (to measure against).
 * Change only between steps. */
void buckets_set_overlap(buckets *b, bool on);
/* Local. 0 (default): the comm thread blocks in MPI_Allreduce. > 0: MPI_Iallreduce polled with MPI_Test
 * every poll_us microseconds, so the thread sleeps instead of spinning on a core shared with compute. */
void buckets_set_poll_us(buckets *b, int poll_us);

void buckets_begin_step(buckets *b);                            /* before the step's backward */
void buckets_mark_ready(buckets *b, size_t off, size_t count);  /* range [off, off+count) is final */
void buckets_model_hook(void *b, size_t off, size_t count);     /* the same, shaped as model_grad_hook */
void buckets_finish(buckets *b);                                /* COLLECTIVE: wait; arena = global mean */

const buckets_stats *buckets_last_stats(const buckets *b);
int buckets_count(const buckets *b);
/* bucket i's range in the arena and its last reduce time (start -> done) */
void buckets_info(const buckets *b, int i, size_t *off, size_t *count, double *reduce_s);
#endif
