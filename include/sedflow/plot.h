/*
 * sedflow/plot.h — PNG figures of calibration results, drawn by gnuplot
 * (Debian package gnuplot-nox, terminal pngcairo) run as a child process.
 *
 * The library writes the data to a temporary file, pipes a script to
 * gnuplot, and renames "<png>.tmp" to "<png>" when gnuplot succeeded.  It
 * never prints: gnuplot's messages go to a temporary log whose first line
 * becomes the error message.  The gnuplot executable is $SEDFLOW_GNUPLOT
 * when set, else "gnuplot" found on $PATH; when there is none, every
 * function returns SF_EIO ("gnuplot not found ...") and writes nothing.
 * Temporary files live in $TMPDIR (default /tmp) and are always removed.
 *
 * Output paths must not contain a single quote or a newline (SF_EINVAL).
 */
#ifndef SEDFLOW_PLOT_H
#define SEDFLOW_PLOT_H

#include <stddef.h>

#include "sedflow/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a gnuplot executable was found (see above), else 0. */
int sf_plot_available(void);

/* Grid of p-p plots (paper Fig. 3), one panel per parameter: the empirical
 * CDF of the percentiles pit[n_test][nparam] (from sf_calib_ranks), the
 * diagonal, and optionally a reference set ref_pit[n_ref][nparam] (e.g. the
 * MCMC posteriors, drawn in grey; NULL for none).  names[nparam] label the
 * panels (NULL: "param <p>").  Errors: SF_EINVAL, SF_EIO (gnuplot missing
 * or failed, file not writable), SF_ENOMEM. */
sf_status sf_plot_pp_grid(const char *png, const double *pit, size_t n_test, size_t nparam,
                          const double *ref_pit, size_t n_ref, const char *const *names);

/* Grid of SBC rank histograms (paper Fig. 4), one panel per parameter:
 * ranks rank[n_test][nparam] in 0..L binned into nbins bins (0: the
 * default of sf_calib_default_bins), with the uniform expectation and its
 * central 99% band (binomial, from the normal approximation).  Errors as
 * sf_plot_pp_grid. */
sf_status sf_plot_sbc_grid(const char *png, const long *rank, size_t n_test, size_t nparam, size_t L,
                           size_t nbins, const char *const *names);

/* Coverage plot: expected coverage cov[ncurve][nlev] against the
 * credibility level[nlev] for ncurve curves (e.g. one per parameter, or
 * the TARP ECP), labels[ncurve] (NULL: "curve <c>"), and the diagonal. */
sf_status sf_plot_coverage(const char *png, const double *level, size_t nlev, const double *cov, size_t ncurve,
                           const char *const *labels);

/* Corner plot (the paper's Fig. 2 style) of one or
 * two posterior sample sets: a[na][ndim] (blue) and optionally b[nb][ndim]
 * (grey; NULL for none), ndim >= 1 (<= 16).  Diagonal: normalised 1-D
 * histograms (40 bins); below it: every pair as a scatter of at most 3000
 * evenly thinned samples per set.  truth[ndim] (NULL: none) is marked by
 * red lines.  Axis ranges cover the 0.5-99.5 percentiles of both sets.
 * labels[2] name the sets in the title (NULL: none).  Errors as
 * sf_plot_pp_grid (SF_EINVAL also for NaN samples). */
sf_status sf_plot_corner(const char *png, const double *a, size_t na, const double *b, size_t nb, size_t ndim,
                         const double *truth, const char *const *names, const char *const *labels);

#ifdef __cplusplus
}
#endif
#endif
