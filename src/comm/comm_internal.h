/* comm/ private header: only the comm/ sources include it (and so mpi.h). */
#ifndef SC_COMM_INTERNAL_H
#define SC_COMM_INTERNAL_H
#include "core/error.h"
#include <mpi.h>

/* Every MPI call goes through this: MPI_ERRORS_RETURN is set on our communicators, so a failure comes back
 * here and ends all ranks with the call's text, file and line (never a hang in the next collective). */
void comm_mpi_fail(int rc, const char *call, const char *file, int line) __attribute__((noreturn));
#define MPI_CHECK(call)                                                                                        \
    do {                                                                                                       \
        int _rc = (call);                                                                                      \
        if (_rc != MPI_SUCCESS) comm_mpi_fail(_rc, #call, __FILE__, __LINE__);                                 \
    } while (0)

MPI_Comm comm_world_dup(void); /* the main compute communicator (a dup of COMM_WORLD) */
int comm_thread_level(void);   /* level MPI_Init_thread provided */
#endif
