/*
 * sedflow — Bayesian posteriors of galaxy properties from broadband
 * photometry by amortized neural posterior estimation (Hahn & Melchior 2022).
 * This file dispatches to the subcommands (one file each, cli/cmd_*.c).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/* Subcommands not built yet are weak references left NULL and not listed. */
#pragma weak cmd_sed
#pragma weak cmd_noise
#pragma weak cmd_simulate
#pragma weak cmd_train
#pragma weak cmd_logprob
#pragma weak cmd_sample
#pragma weak cmd_infer
#pragma weak cmd_validate
#pragma weak cmd_mcmc
#pragma weak cmd_compare

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static void usage(FILE *out, const command *cmds, size_t n)
{
    fprintf(out,
            "usage: sedflow <command> [options]   (sedflow <command> --help for details)\n\n"
            "sedflow %s: posteriors of galaxy properties (stellar mass, SFH, metallicity,\n"
            "dust) from ugriz photometry with a conditional normalizing flow trained on\n"
            "the PROVABGS SED model (SEDflow, Hahn & Melchior 2022).\n\ncommands:\n",
            SEDFLOW_VERSION);
    for (size_t i = 0; i < n; i++)
        if (cmds[i].fn) fprintf(out, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
}

int main(int argc, char **argv)
{
    const command cmds[] = {
        {"sed", cmd_sed, "forward model: ugriz photometry, spectrum and derived properties for parameters"},
        {"noise", cmd_noise, "fit or show the photometric noise model (sigma vs magnitude)"},
        {"simulate", cmd_simulate, "simulate a training or test set of noisy galaxy photometry"},
        {"train", cmd_train, "train a conditional normalizing flow q(theta | x)"},
        {"logprob", cmd_logprob, "mean log q(theta_true | x) of a model on a held-out set"},
        {"sample", cmd_sample, "posterior samples for given photometry"},
        {"infer", cmd_infer, "posteriors and derived properties for a galaxy catalog (the main job)"},
        {"validate", cmd_validate, "calibration: SBC ranks, p-p curves, coverage"},
        {"mcmc", cmd_mcmc, "MCMC posterior (ensemble slice sampler) on the same likelihood"},
        {"compare", cmd_compare, "compare ANPE and MCMC posteriors for chosen galaxies"},
    };
    const size_t n = sizeof cmds / sizeof cmds[0];
    if (argc < 2) {
        usage(stderr, cmds, n);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout, cmds, n);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("sedflow %s\n", SEDFLOW_VERSION);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (cmds[i].fn && !strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "sedflow: unknown command '%s'\n", argv[1]);
    usage(stderr, cmds, n);
    return 2;
}
