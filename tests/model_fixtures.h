/* tests/model_fixtures.h: the model configurations and fillers that test_model.c and test_model_fd.c share. */
#ifndef SC_TESTS_MODEL_FIXTURES_H
#define SC_TESTS_MODEL_FIXTURES_H
#include "../src/model/model_internal.h"
#include "core/rng.h"
#include "test_util.h"
#include <stdio.h>
#include <string.h>

/* a slimmable ResNet at the four widths 1 / 0.75 / 0.5 / 0.25, RGB input; callers set the head's sizes */
static inline model_cfg cfg_slim(int depth, int base, int img, model_stem stem, model_head head) {
    model_cfg c = {0};
    c.depth = depth;
    c.base = base;
    c.in_ch = 3;
    c.img = img;
    c.stem = stem;
    c.nwidths = 4;
    c.widths[0] = 1.0f;
    c.widths[1] = 0.75f;
    c.widths[2] = 0.5f;
    c.widths[3] = 0.25f;
    c.head = head;
    c.zero_init_last_bn = true;
    return c;
}

static inline model_cfg cfg_r18(int base, int img, model_head head) {
    model_cfg c = cfg_slim(18, base, img, STEM_SMALL, head);
    c.head_hidden = 0;
    c.head_out = 6;
    return c;
}

static inline model *create_ok(const model_cfg *c) {
    sc_err e = SC_OK;
    model *m = model_create(c, &e);
    if (!m) fprintf(stderr, "model_create failed: %s\n", sc_last_error());
    assert_non_null(m);
    assert_int_equal(e, SC_OK);
    return m;
}

/* non-trivial BN affine parameters (the default gamma 1 / last-BN gamma 0 would hide gradient paths) */
static inline void randomize_bn(model *m, uint64_t seed) {
    rng_stream s = rng_stream_make(seed, 7, 7, 7);
    for (int i = 0; i < model_ntensors(m); i++) {
        const param_info *p = model_tensor(m, i);
        if (p->kind != PARAM_BN) continue;
        bool w = strstr(p->name, ".weight") != NULL;
        tu_fill_uniform(&s, model_params(m) + p->offset, p->count, w ? 0.5f : -0.5f, w ? 1.5f : 0.5f);
    }
}
#endif
