/* One rank hits sc_fatal while the others wait in a collective (and a bucket comm thread is alive): the
 * whole job must end quickly with a non-zero exit, never hang. Usage: mpi_fatal [bad_rank] */
#include "comm/buckets.h"
#include "comm/comm.h"
#include "core/error.h"
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    comm_init(&argc, &argv);
    int P = comm_size();
    int bad = argc > 1 ? atoi(argv[1]) % P : P - 1;
    static float g[1024];
    size_t off = 0, cnt = 1024;
    buckets *b = buckets_create(g, 1024, &off, &cnt, 1, 1.0);
    buckets_begin_step(b);
    if (comm_rank() == bad) {
        usleep(200 * 1000);
        sc_fatal("deliberate failure on rank %d (testing the abort path)", bad);
    }
    (void)comm_allreduce_max_int(1); /* the others block here until MPI_Abort ends them */
    buckets_finish(b);
    buckets_free(b);
    comm_finalize();
    return 0; /* reaching this is a bug: the script expects a non-zero exit */
}
