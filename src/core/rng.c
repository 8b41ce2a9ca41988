#include "core/rng.h"
#include <math.h>

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

rng_block rng_philox(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo) {
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32), c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    rng_block b = {{c0, c1, c2, c3}};
    return b;
}

uint64_t rng_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

rng_stream rng_stream_make(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    rng_stream s;
    s.key = rng_mix64(seed ^ rng_mix64(a + 0x1234567ull));
    s.hi = rng_mix64(b) ^ (rng_mix64(c + 0xabcdefull) << 1);
    s.n = 0;
    s.left = 0;
    return s;
}

uint32_t rng_u32(rng_stream *s) {
    if (s->left == 0) {
        rng_block b = rng_philox(s->key, s->hi, s->n++);
        for (int i = 0; i < 4; i++) s->buf[i] = b.v[i];
        s->left = 4;
    }
    return s->buf[--s->left];
}

float rng_uniform(rng_stream *s) { return (rng_u32(s) >> 8) * (1.0f / 16777216.0f); }
float rng_uniform_range(rng_stream *s, float lo, float hi) { return lo + (hi - lo) * rng_uniform(s); }

float rng_normal(rng_stream *s) {
    float u1 = rng_uniform(s), u2 = rng_uniform(s);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}

uint64_t rng_below(rng_stream *s, uint64_t n) {
    uint64_t x = ((uint64_t)rng_u32(s) << 32) | rng_u32(s);
    return n ? x % n : 0;
}
