/* nn/linear: fully connected layer on feature-major activations x[in][n] -> y[out][n].
 * Full weight [out_max][in_max] (row-major, ld = in_max), optional bias[out_max]; a width uses the
 * leading out x in block. */
#ifndef SC_NN_LINEAR_H
#define SC_NN_LINEAR_H
#include <stdbool.h>

typedef struct { int in_max, out_max; bool bias; } linear_desc;

void linear_forward(const linear_desc *d, int n, int in, int out, const float *W, const float *b, const float *x,
                    float *y);
/* dW, db accumulated (+=); dx overwritten when non-NULL. */
void linear_backward(const linear_desc *d, int n, int in, int out, const float *W, const float *x, const float *dy,
                     float *dW, float *db, float *dx);
#endif
