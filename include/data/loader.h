/* data/loader: the global sampler and the threaded, double-buffered batch loader.
 *
 * Sampler: epoch e's order is a Fisher-Yates permutation of [0, n) drawn from rng_stream(seed, e, ~0, ~0);
 * drop_last, so an epoch has floor(n / B) steps. Step s's global batch is perm[s*B, s*B+B); rank r of P
 * takes [r*B/P, (r+1)*B/P) of it. Every rank computes the same permutation, so the union of the ranks'
 * slices is the global batch whatever P (rank-count independent data).
 *
 * Views: sample i's view v in epoch e uses rng_stream_make(seed, e, i, v), so it is the same whatever the
 * rank split or worker count.
 *
 * Loader: `workers` pthreads fill the NEXT batch while the caller computes on the current one (two batch
 * slots planned at creation; nothing is allocated per batch). workers = 0 produces synchronously in
 * loader_next. A batch returned by loader_next stays valid until the next loader_next/seek/free. */
#ifndef SC_DATA_LOADER_H
#define SC_DATA_LOADER_H
#include "core/error.h"
#include "data/augment.h"
#include "data/data.h"
#include <stdint.h>

typedef struct loader_batch {
    int b;              /* local images in this batch (0 = end of an eval pass) */
    int c, h, w;        /* per view */
    int nviews;
    float *x[2];        /* CNHW [c][b][h][w]; x[1] NULL when nviews = 1 */
    int32_t *labels;    /* b */
    int64_t *index;     /* b sample indices into the set */
    int64_t epoch, step;
} loader_batch;

typedef struct loader_cfg {
    const data_set *set; /* borrowed: must outlive the loader */
    aug_cfg view[2];
    int nviews;          /* 1 or 2 */
    int global_batch;    /* B: global, equal on every rank */
    int rank, nranks;    /* local */
    int workers;         /* threads producing batches; 0 = synchronous */
    uint64_t seed;       /* global */
} loader_cfg;

typedef struct loader loader;

sc_err loader_create(const loader_cfg *cfg, loader **out);
/* Blocks until the next batch is ready and starts the one after; epochs roll over automatically.
 * Errors from workers (a shard read, a CRC) are returned here with their message. */
sc_err loader_next(loader *ld, loader_batch *batch);
void loader_seek(loader *ld, int64_t epoch, int64_t step); /* the next batch is (epoch, step); for resume */
int64_t loader_steps_per_epoch(const loader *ld);
int loader_max_local_batch(const loader *ld);
void loader_free(loader *ld);

/* Sampler pieces (exposed for tests and for `slimclr info`). perm: n entries. */
void loader_epoch_perm(uint64_t seed, int64_t epoch, int64_t n, int64_t *perm);
void loader_rank_slice(int global_batch, int rank, int nranks, int *begin, int *end);

/* Evaluation pass: samples [begin, end) in order, no randomness (cfg->view[0] should be preset "none"),
 * batches of cfg->global_batch *local* images, the last one partial; loader_next returns b = 0 at the end
 * (then starts over). rank/nranks/seed/nviews of cfg are ignored. */
sc_err loader_create_eval(const loader_cfg *cfg, int64_t begin, int64_t end, loader **out);
#endif
