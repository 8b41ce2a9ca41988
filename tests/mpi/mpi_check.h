/* Shared by the multi-rank test programs: a check that reports rank/file/line and a collective verdict. */
#ifndef SC_MPI_CHECK_H
#define SC_MPI_CHECK_H
#include "comm/comm.h"
#include <stdio.h>

static int mpi_check_failures = 0;
#define CHECK(cond, ...)                                                                                       \
    do {                                                                                                       \
        if (!(cond)) {                                                                                         \
            mpi_check_failures++;                                                                              \
            fprintf(stderr, "FAIL rank %d %s:%d: ", comm_rank(), __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                                      \
            fputc('\n', stderr);                                                                               \
        }                                                                                                      \
    } while (0)

/* COLLECTIVE: returns the process exit code (0 when no rank failed) and prints the verdict on rank 0. */
static inline int mpi_check_verdict(const char *name) {
    int any = comm_allreduce_max_int(mpi_check_failures);
    if (comm_rank() == 0) printf("%s with %d ranks: %s\n", name, comm_size(), any ? "FAILED" : "PASSED");
    return any ? 1 : 0;
}
#endif
