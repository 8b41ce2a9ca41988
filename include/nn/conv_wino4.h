/* nn/conv_wino4: the transforms of Winograd F(4x4,3x3) (6x6 input tiles at stride 4, 36 transform points) for
 * nn/conv_wino, which runs them on its F(2x2,3x3) machinery (packing, products, chunks, threads); internal to it.
 * Point xi = 6*i + j (i down the rows, j across the columns); a plane's tiles at v[xi*xs + th*twn + tw], tile
 * (th, tw) reading rows / columns 4*th-1 .. 4*th+4 / 4*tw-1 .. 4*tw+4 (zeros outside), writing outputs 4*th ..
 * 4*th+3 (cropped at the map's edge). */
#ifndef SC_NN_CONV_WINO4_H
#define SC_NN_CONV_WINO4_H
#include <stddef.h>

#define WINO4_CMAX 1032 /* most columns of a transformed row: 4 * 256 tiles + 2 (rows up to 1024 wide) */
#define WINO4_BT_MAX 256 /* most tiles in one phase buffer (a block of the fused forward, a group of tile rows) */
#define WINO4_PS (WINO4_BT_MAX + 8) /* stride of a phase buffer's streams (writes run up to 7 tiles past the end) */

/* a run of tiles of one tile row: tiles tw0 .. tw0+len-1 of tile row th of plane src */
typedef struct {
    const float *src;
    int th, tw0, len;
} wino4_seg;
/* V tiles of ns segments of planes [h][w] (WINO4_BT_MAX tiles at most; their memory readable up to end),
 * consecutive: tile t of point xi at v[xi*xs + (t/aw)*pstride + t%aw] (the packed panels of aw columns, aw a
 * multiple of 8 or >= nb), zeros to the end of the last panel */
void wino4_in_block(const wino4_seg *sg, int ns, int h, int w, const float *end, float *v, size_t xs, int aw,
                    size_t pstride);
/* V tiles of np whole planes src[p][h][w]: v[xi*xs + (p*thn + th)*twn + tw] (tiles of consecutive tile rows and
 * planes are consecutive: transformed WINO4_BT_MAX at a time) */
void wino4_in_planes(const float *src, int np, int h, int w, float *v, size_t xs);
/* A^T M A of nb tiles m[xi*xs + t]: output (r, c) of tile t at o[(4*r + c)*os + t] */
void wino4_out_tiles(const float *m, size_t xs, int nb, float *o, int os);
/* dM = A dY A^T of np planes' tiles (the transpose of the output transform; zeros beyond the crop), tiles as in
 * wino4_in_planes */
void wino4_dout_planes(const float *dy, int np, int h, int w, float *dm, size_t xs);
/* dst[p][h][w] = sum over plane p's tiles of B dV B^T (the transpose of wino4_in_planes), overwritten */
void wino4_din_planes(const float *v, size_t xs, int np, int h, int w, float *dst);
#endif
