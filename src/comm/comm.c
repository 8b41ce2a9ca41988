/* comm/comm: MPI start-up, the abort path and the blocking collectives of the main thread.
 *
 * Threading decision: we ask for MPI_THREAD_MULTIPLE because gradient buckets are reduced by a
 * communication thread (its own duplicated communicator) while the main thread keeps calling MPI for
 * SyncBN and key gathers (docs/method.md "Communication and signals": Open MPI has no asynchronous progress).
 * If the library provides less, we do not refuse: buckets fall back to reducing everything in
 * buckets_finish on the main thread (no overlap, same results) and say so once on rank 0. */
#include "comm/comm.h"
#include "comm_internal.h"
#include "core/error.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_rank = 0, g_size = 1, g_level = MPI_THREAD_SINGLE;
static int g_inited = 0;      /* we called MPI_Init_thread */
static MPI_Comm g_comm = MPI_COMM_NULL;

void comm_mpi_fail(int rc, const char *call, const char *file, int line) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error code %d", rc);
    sc_fatal_at(file, line, "MPI call failed: %s: %s", call, msg);
}

void comm_abort(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1);
}

int comm_init(int *argc, char ***argv) {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
        /* Oversubscribed runs (tests, the comm thread beside compute) must not spin a core at full speed
         * while waiting; the user's own setting wins. */
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &g_level);
        if (rc != MPI_SUCCESS) {
            fprintf(stderr, "slimclr: error: MPI_Init_thread failed (code %d)\n", rc);
            exit(1);
        }
        g_inited = 1;
    } else {
        MPI_Query_thread(&g_level);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &g_comm));
    MPI_CHECK(MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN));
    sc_set_rank(g_rank);
    sc_set_abort_hook(comm_abort);
    if (g_level < MPI_THREAD_MULTIPLE && g_size > 1)
        sc_info("note: MPI provides thread level %d < MPI_THREAD_MULTIPLE: gradient allreduce will not overlap "
                "the backward\n", g_level);
    return g_rank;
}

void comm_finalize(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return;
    if (g_comm != MPI_COMM_NULL) MPI_Comm_free(&g_comm);
    g_comm = MPI_COMM_NULL;
    sc_set_abort_hook(NULL);
    if (g_inited) MPI_Finalize();
}

int comm_rank(void) { return g_rank; }
int comm_size(void) { return g_size; }

int comm_local_size(void) {
    if (g_comm == MPI_COMM_NULL) return 1;
    MPI_Comm node;
    int n = 1;
    MPI_CHECK(MPI_Comm_split_type(g_comm, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_size(node, &n));
    MPI_Comm_free(&node);
    return n;
}
int comm_thread_level(void) { return g_level; }
bool comm_thread_multiple(void) { return g_level >= MPI_THREAD_MULTIPLE; }

MPI_Comm comm_world_dup(void) {
    SC_CHECK(g_comm != MPI_COMM_NULL, "comm_init was not called before a collective");
    return g_comm;
}

/* Large buffers go in INT_MAX-sized pieces: MPI counts are int. */
#define COMM_CHUNK ((size_t)1 << 30)

void comm_barrier(void) {
    if (g_size == 1) return;
    MPI_CHECK(MPI_Barrier(comm_world_dup()));
}

void comm_bcast(void *buf, size_t bytes, int root) {
    if (g_size == 1) return;
    char *p = buf;
    for (size_t o = 0; o < bytes; o += COMM_CHUNK) {
        size_t n = bytes - o < COMM_CHUNK ? bytes - o : COMM_CHUNK;
        MPI_CHECK(MPI_Bcast(p + o, (int)n, MPI_BYTE, root, comm_world_dup()));
    }
}

void comm_allreduce_sum_f64(double *buf, int n) {
    if (g_size == 1 || n <= 0) return;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, comm_world_dup()));
}

void comm_allreduce_sum_f32(float *buf, size_t n) {
    if (g_size == 1) return;
    for (size_t o = 0; o < n; o += COMM_CHUNK / sizeof(float)) {
        size_t c = n - o < COMM_CHUNK / sizeof(float) ? n - o : COMM_CHUNK / sizeof(float);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + o, (int)c, MPI_FLOAT, MPI_SUM, comm_world_dup()));
    }
}

int comm_allreduce_max_int(int v) {
    if (g_size == 1) return v;
    int r = v;
    MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_INT, MPI_MAX, comm_world_dup()));
    return r;
}

double comm_allreduce_max_f64(double v) {
    if (g_size == 1) return v;
    double r = v;
    MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm_world_dup()));
    return r;
}

double comm_allreduce_min_f64(double v) {
    if (g_size == 1) return v;
    double r = v;
    MPI_CHECK(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MIN, comm_world_dup()));
    return r;
}

void comm_allgather_f32(const float *send, size_t count, float *recv) {
    if (g_size == 1) {
        if (recv != send) memmove(recv, send, count * sizeof(float));
        return;
    }
    SC_CHECK(count <= (size_t)INT_MAX, "comm_allgather_f32: %zu floats per rank exceeds the MPI count limit", count);
    MPI_CHECK(MPI_Allgather(send, (int)count, MPI_FLOAT, recv, (int)count, MPI_FLOAT, comm_world_dup()));
}

void comm_gather_f64(const double *send, int count, double *recv, int root) {
    if (g_size == 1) {
        if (recv != send) memmove(recv, send, (size_t)count * sizeof(double));
        return;
    }
    MPI_CHECK(MPI_Gather(send, count, MPI_DOUBLE, recv, count, MPI_DOUBLE, root, comm_world_dup()));
}

static void bn_sum_f64(double *buf, int n, void *ctx) {
    (void)ctx;
    comm_allreduce_sum_f64(buf, n);
}

const sc_reducer *comm_bn_reducer(void) {
    /* never NULL, so callers need no special case; its function is the identity on one rank */
    static const sc_reducer sync = {bn_sum_f64, NULL, NULL, false};
    return &sync;
}

/* the non-blocking requests: a fixed pool (no allocation per call), used only by the main thread */
static MPI_Request ireq[COMM_IREQ_MAX];
static bool ireq_used[COMM_IREQ_MAX];

int comm_iallreduce_sum_f64(double *buf, int n) {
    if (g_size == 1 || n <= 0) return -1;
    int h = 0;
    while (h < COMM_IREQ_MAX && ireq_used[h]) h++;
    SC_CHECK(h < COMM_IREQ_MAX, "comm_iallreduce_sum_f64: more than %d reductions in flight", COMM_IREQ_MAX);
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, comm_world_dup(), &ireq[h]));
    ireq_used[h] = true;
    return h;
}

int comm_iallgather_f32(const float *send, size_t count, float *recv) {
    if (g_size == 1) {
        if (recv != send) memmove(recv, send, count * sizeof(float));
        return -1;
    }
    SC_CHECK(count <= (size_t)INT_MAX, "comm_iallgather_f32: %zu floats per rank exceeds the MPI count limit", count);
    int h = 0;
    while (h < COMM_IREQ_MAX && ireq_used[h]) h++;
    SC_CHECK(h < COMM_IREQ_MAX, "comm_iallgather_f32: more than %d requests in flight", COMM_IREQ_MAX);
    MPI_CHECK(MPI_Iallgather(send, (int)count, MPI_FLOAT, recv, (int)count, MPI_FLOAT, comm_world_dup(), &ireq[h]));
    ireq_used[h] = true;
    return h;
}

bool comm_ireq_test(int h) {
    if (h < 0) return true;
    SC_CHECK(h < COMM_IREQ_MAX && ireq_used[h], "comm_ireq_test: handle %d not in flight", h);
    int done = 0;
    MPI_CHECK(MPI_Test(&ireq[h], &done, MPI_STATUS_IGNORE)); /* a completed request becomes MPI_REQUEST_NULL */
    return done != 0;
}

void comm_ireq_testsome(const int *h, int n, bool *done) {
    MPI_Request r[COMM_IREQ_MAX];
    int idx[COMM_IREQ_MAX], m = 0, out = 0;
    SC_CHECK(n <= COMM_IREQ_MAX, "comm_ireq_testsome: %d handles", n);
    int at[COMM_IREQ_MAX]; /* r[k] is handle h[at[k]] */
    for (int i = 0; i < n; i++) {
        if (h[i] >= 0)
            SC_CHECK(h[i] < COMM_IREQ_MAX && ireq_used[h[i]], "comm_ireq_testsome: handle %d not in flight", h[i]);
        /* completed before: MPI_REQUEST_NULL, which MPI_Testsome skips (MPI_Test reports it complete) */
        done[i] = h[i] < 0 || ireq[h[i]] == MPI_REQUEST_NULL;
        if (!done[i]) { at[m] = i; r[m++] = ireq[h[i]]; }
    }
    if (m == 0) return;
    MPI_CHECK(MPI_Testsome(m, r, &out, idx, MPI_STATUSES_IGNORE));
    for (int k = 0; k < m; k++) ireq[h[at[k]]] = r[k]; /* completed ones became MPI_REQUEST_NULL: their wait returns */
    for (int j = 0; out != MPI_UNDEFINED && j < out; j++) done[at[idx[j]]] = true;
}

void comm_ireq_wait(int h) {
    if (h < 0) return;
    SC_CHECK(h < COMM_IREQ_MAX && ireq_used[h], "comm_ireq_wait: handle %d not in flight", h);
    MPI_CHECK(MPI_Wait(&ireq[h], MPI_STATUS_IGNORE));
    ireq_used[h] = false;
}

const char *comm_library_version(void) {
    static char buf[MPI_MAX_LIBRARY_VERSION_STRING + 32];
    int len = 0, major = 0, minor = 0;
    MPI_Get_library_version(buf, &len);
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    MPI_Get_version(&major, &minor);
    size_t l = strlen(buf);
    snprintf(buf + l, sizeof buf - l, " (MPI %d.%d)", major, minor);
    return buf;
}
