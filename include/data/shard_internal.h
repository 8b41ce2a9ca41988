/* data/: shard internals shared by the readers (not for other modules). */
#ifndef SC_DATA_SHARD_INTERNAL_H
#define SC_DATA_SHARD_INTERNAL_H
#include "data/data.h"

/* Reads image i (pread, thread-safe) and checks its CRC32 over label (4 bytes LE) + pixels. */
sc_err data_shard_read(const data_shard *sh, int64_t i, int32_t label, uint8_t *dst);
void data_shard_close(data_shard *sh);
#endif
