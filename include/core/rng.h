/* core/rng: counter-based random numbers. A value is a pure function of (key, counter), so the same
 * sample gets the same augmentation whatever the rank or thread count (Philox-4x32-10). */
#ifndef SC_CORE_RNG_H
#define SC_CORE_RNG_H
#include <stdint.h>

typedef struct { uint32_t v[4]; } rng_block;
rng_block rng_philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo);

/* A stream: key + counter prefix; draws advance `n`. Cheap to copy, exactly reproducible. */
typedef struct {
    uint64_t key, hi, n;
    uint32_t buf[4];
    int left;
} rng_stream;
rng_stream rng_stream_make(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
uint32_t rng_u32(rng_stream *s);
float rng_uniform(rng_stream *s);             /* [0, 1) */
float rng_uniform_range(rng_stream *s, float lo, float hi);
float rng_normal(rng_stream *s);              /* N(0, 1), Box-Muller */
uint64_t rng_below(rng_stream *s, uint64_t n); /* uniform integer in [0, n) */
uint64_t rng_mix64(uint64_t x);               /* splitmix64 finaliser, for deriving keys */
#endif
