/* comm/: the only module that includes mpi.h. Every function whose name starts comm_ and is marked
 * COLLECTIVE must be called by every rank in the same order. On one rank everything is the identity. */
#ifndef SC_COMM_H
#define SC_COMM_H
#include "core/reducer.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int comm_init(int *argc, char ***argv); /* MPI_Init_thread(MULTIPLE); installs sc abort hook; returns rank */
void comm_finalize(void);                /* after buckets_free (the comm thread must be gone) */
int comm_rank(void);
int comm_size(void);
int comm_local_size(void);              /* COLLECTIVE: the ranks on this rank's node (shared-memory domain) */
void comm_abort(int code);              /* MPI_Abort(COMM_WORLD): ends every rank */
/* true when MPI gave MPI_THREAD_MULTIPLE (gradient buckets then overlap on a comm thread; otherwise they
 * reduce in buckets_finish). Without comm_init everything below is the single-rank identity. */
bool comm_thread_multiple(void);
const char *comm_library_version(void); /* MPI_Get_library_version, first line, + the standard version */

/* COLLECTIVE */
void comm_barrier(void);
void comm_bcast(void *buf, size_t bytes, int root);
void comm_allreduce_sum_f64(double *buf, int n);
void comm_allreduce_sum_f32(float *buf, size_t n);
int comm_allreduce_max_int(int v);      /* e.g. any rank saw NaN / a stop signal */
double comm_allreduce_max_f64(double v);
double comm_allreduce_min_f64(double v);
/* recv = concatenation over ranks of each rank's send[count] (rank order) */
void comm_allgather_f32(const float *send, size_t count, float *recv);
void comm_gather_f64(const double *send, int count, double *recv, int root);

/* The SyncBN reducer (sum of doubles over all ranks, on the main compute communicator); never NULL, its
 * function is the identity on one rank. COLLECTIVE whenever a layer calls it. */
const sc_reducer *comm_bn_reducer(void);

/* Non-blocking in-place sum of n doubles over all ranks on the main communicator (SyncBN of the wavefront
 * schedule, ssl/wavefront.c): returns a handle (-1 on one rank: nothing to do); at most COMM_IREQ_MAX in flight.
 * comm_ireq_test: whether it completed (drives MPI's progress: Open MPI progresses only inside MPI calls);
 * comm_ireq_wait: blocks until it completed and frees the handle (every handle is waited once). COLLECTIVE: every
 * rank starts them in the same order, interleaved with the blocking collectives in the same order. */
#define COMM_IREQ_MAX 64
int comm_iallreduce_sum_f64(double *buf, int n);
/* Non-blocking comm_allgather_f32 (the MoCo v2 key enqueue, ssl/step.c): send and recv must stay untouched until
 * comm_ireq_wait; -1 on one rank (recv = send at once). Same rules as above. */
int comm_iallgather_f32(const float *send, size_t count, float *recv);
bool comm_ireq_test(int h);
/* comm_ireq_test of n handles at once, with one progress call (MPI_Testsome): done[i] set for those complete */
void comm_ireq_testsome(const int *h, int n, bool *done);
void comm_ireq_wait(int h);
#endif
