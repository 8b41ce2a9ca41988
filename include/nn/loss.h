/* nn/loss: losses over sample-major logits z[n][c]. Each returns the mean loss over the n rows and writes
 * the gradient of (scale * that mean) into dz (overwritten) when dz != NULL. `denom` generalises the mean:
 * the loss is sum/denom (pass n for a local mean, the global batch for a global-mean loss over ranks). */
#ifndef SC_NN_LOSS_H
#define SC_NN_LOSS_H
#include <stdint.h>

/* softmax cross-entropy with integer labels: -log softmax(z_i)[y_i] */
double loss_softmax_ce(int n, int c, const float *z, const int32_t *labels, double denom, float scale, float *dz);
/* soft-target CE with temperatures: tau_s^2 * -sum_j softmax(t_j/tau_t) log softmax(z_j/tau_s) (teacher t is
 * constant: no gradient to it). This is the distillation term of docs/method.md §4b. */
double loss_soft_ce(int n, int c, const float *z, const float *t, float tau_s, float tau_t, double denom, float scale,
                    float *dz);
/* mean squared error: sum_ij (a-b)^2 / (denom * c)  (PyTorch MSELoss mean over all elements when denom = n) */
double loss_mse(int n, int c, const float *a, const float *b, double denom, float scale, float *da);
#endif
