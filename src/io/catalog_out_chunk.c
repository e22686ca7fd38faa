/*
 * Posterior-sample rows as finished HDF5 chunks (io/catalog_out_chunk.h):
 * HDF5's shuffle byte order, then a zlib stream, written by the caller with
 * H5Dwrite_chunk.  HDF5's filter pipeline runs inside H5Dwrite on one
 * thread; encoding the rows here lets sedflow infer compress them on all
 * its threads, and at level 1 with zlib settings that suit noisy floats.
 */
#include "io/catalog_out_chunk.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include <zlib.h>

size_t sf_chunk_f32_bound(size_t n)
{
    /* zlib's conservative deflateBound for any level and strategy, plus the
     * zlib header and trailer */
    size_t b = 4 * n;
    return b + (b >> 3) + (b >> 6) + 64;
}

/* HDF5's shuffle filter for 4-byte elements: byte j of value i -> shuf[j n + i]. */
static void shuffle4(const float *x, size_t n, unsigned char *shuf)
{
    const unsigned char *c = (const unsigned char *)x;
    unsigned char *p0 = shuf, *p1 = shuf + n, *p2 = shuf + 2 * n, *p3 = shuf + 3 * n;
    for (size_t i = 0; i < n; i++) {
        p0[i] = c[4 * i];
        p1[i] = c[4 * i + 1];
        p2[i] = c[4 * i + 2];
        p3[i] = c[4 * i + 3];
    }
}

/* Whether run-length/Huffman coding can pay on a byte plane: its byte
 * entropy is below 7.5 bits (Huffman saves >= ~6%).  Plane 2 (the lowest
 * exponent bit and the top 7 mantissa bits) is near-uniform noise for most
 * posterior samples (coded size 0.99-1.0 of stored on the NSA), but
 * compresses to ~0.5 for a narrow posterior such as log M*. */
static int plane_compresses(const unsigned char *b, size_t n)
{
    size_t h[256] = {0};
    for (size_t i = 0; i < n; i++) h[b[i]]++;
    double e = 0;
    for (int k = 0; k < 256; k++)
        if (h[k]) {
            const double p = (double)h[k] / (double)n;
            e -= p * log2(p);
        }
    return e < 7.5;
}

sf_status sf_chunk_f32_encode(const float *x, size_t n, int level, int store_low, unsigned char *shuf,
                              unsigned char *out, size_t cap, size_t *len)
{
    *len = 0;
    if (level < 1 || level > 9) return SF_ERROR(SF_EINVAL, "deflate level %d outside 1..9", level);
    if (n < 1 || cap < sf_chunk_f32_bound(n) || 4 * n > UINT_MAX || cap > UINT_MAX)
        return SF_ERROR(SF_EINVAL, "chunk of %zu floats: output buffer %zu bytes (need %zu, at most %u)", n, cap,
                        sf_chunk_f32_bound(n), UINT_MAX);
    shuffle4(x, n, shuf);
    /* one deflate block (at least) per byte plane: a block spanning two
     * planes shares one Huffman code between the near-constant exponent
     * plane and a noisy one (1-row chunks: 0.83 of the raw size instead of 0.79) */
    const int low_stored = level == 1 && store_low;
    /* with low_stored, the first plane coded: 2, or 3 when plane 2 is noise */
    const int first_coded = low_stored && !plane_compresses(shuf + 2 * n, n) ? 3 : 2;
    const int strategy = level == 1 ? Z_RLE : Z_DEFAULT_STRATEGY;
    z_stream s;
    memset(&s, 0, sizeof s);
    int rc = deflateInit2(&s, low_stored ? 0 : level, Z_DEFLATED, 15, 8, low_stored ? Z_DEFAULT_STRATEGY : strategy);
    if (rc != Z_OK) return SF_ERROR(rc == Z_MEM_ERROR ? SF_ENOMEM : SF_EINTERNAL, "zlib deflateInit2: error %d", rc);
    s.next_out = out;
    s.avail_out = (uInt)cap;
    for (int p = 0; p < 4 && rc == Z_OK; p++) {
        if (p == first_coded && low_stored) rc = deflateParams(&s, level, strategy);
        if (rc != Z_OK) break;
        s.next_in = shuf + (size_t)p * n;
        s.avail_in = (uInt)n;
        rc = deflate(&s, p < 3 ? Z_BLOCK : Z_FINISH);
        if (p < 3 && rc == Z_OK && s.avail_in) rc = Z_BUF_ERROR;
    }
    size_t used = (size_t)s.total_out;
    deflateEnd(&s);
    if (rc != Z_STREAM_END) return SF_ERROR(SF_EINTERNAL, "zlib deflate: error %d", rc);
    *len = used;
    return SF_OK;
}

int sf_chunk_f32_direct_level(hid_t d)
{
    int level = 0;
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    hsize_t dims[2] = {0, 0}, chunk[2] = {0, 0};
    if (t >= 0 && sp >= 0 && dcpl >= 0 && H5Tequal(t, H5T_IEEE_F32LE) > 0 && H5Tequal(H5T_NATIVE_FLOAT, H5T_IEEE_F32LE) > 0 &&
        H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2 &&
        H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, chunk) == 2 && chunk[0] == 1 &&
        chunk[1] == dims[1] && H5Pget_nfilters(dcpl) == 2) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char name[64];
        H5Z_filter_t f0 = H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, sizeof name, name, NULL);
        ncd = 8;
        H5Z_filter_t f1 = H5Pget_filter2(dcpl, 1, &flags, &ncd, cd, sizeof name, name, NULL);
        if (f0 == H5Z_FILTER_SHUFFLE && f1 == H5Z_FILTER_DEFLATE && ncd >= 1 && cd[0] >= 1 && cd[0] <= 9)
            level = (int)cd[0];
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return level;
}
