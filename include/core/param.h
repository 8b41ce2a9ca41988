/* core/param: a tensor's place in a flat parameter arena (name, offset, size, kind, shape). model/ builds the
 * table; optim/, eval/ and io/ read it, so it lives below them all. */
#ifndef SC_CORE_PARAM_H
#define SC_CORE_PARAM_H
#include <stddef.h>

typedef enum { PARAM_WEIGHT = 0, PARAM_BIAS = 1, PARAM_BN = 2 } param_kind;

typedef struct {
    char name[96];      /* torchvision-style: conv1.weight, layer1.0.bn1.1.weight (.<wi> = BN of width wi) ... */
    size_t offset;      /* into params/grads */
    size_t count;
    param_kind kind;
    int ndim;
    int shape[4];       /* full-size shape */
    int width_only;     /* -1: shared by all widths; else the width index that owns it (BN / switch linear) */
} param_info;
#endif
