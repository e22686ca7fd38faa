/* MCMC for many galaxies with pooled forward-model evaluations
 * (sf_sedpost_mcmc_many): one POSIX thread per running galaxy runs its
 * sampler; its batched log-density callback posts the request and blocks;
 * the calling thread waits until every running galaxy has posted (or
 * finished), evaluates all requests in one pooled batch and wakes them. */
#include <math.h>
#include <omp.h>

#include "core/threads.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mcmc/sedpost_priv.h"

enum { IDLE = 0, RUNNING, PENDING, FINISHED };
enum { CHUNK = 64 };

typedef struct pool pool;

typedef struct {
    pool *P;
    pthread_t th;
    int started;
    pthread_cond_t cv;
    long gal;   /* galaxy being run, -1 none */
    int quit;
    int state;
    const double *u; /* request: n x 11 points, logp out */
    size_t n;
    double *logp;
    sf_status rst;
    char rmsg[512];
    sf_sedpost *sp;
} slot;

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t coord;
    const sf_model *m;
    const sf_sedpost_galaxy *gal;
    sf_sedpost_opts opts;
    sf_mcmc_chain **chains;
    sf_sedpost_diag *diag;
    sf_status *status;
    slot *slots;
    size_t nslot;
    /* pooled batch buffers */
    size_t cap;
    double *theta, *z, *flux;
    slot **map_slot;
    size_t *map_row;
    int nthreads;
    sf_model_work **works;
};

/* The batched callback of one galaxy's sampler: post and wait. */
static sf_status pooled_logp(const double *u, size_t n, double *logp, void *ctx)
{
    slot *s = ctx;
    pool *P = s->P;
    pthread_mutex_lock(&P->mu);
    s->u = u, s->n = n, s->logp = logp, s->state = PENDING;
    pthread_cond_signal(&P->coord);
    while (s->state == PENDING) pthread_cond_wait(&s->cv, &P->mu);
    sf_status st = s->rst;
    char msg[512];
    memcpy(msg, s->rmsg, sizeof msg);
    pthread_mutex_unlock(&P->mu);
    return st ? SF_ERROR(st, "%s", msg) : SF_OK;
}

static void run_galaxy(slot *s, size_t g)
{
    pool *P = s->P;
    const sf_sedpost_galaxy *ga = &P->gal[g];
    sf_sedpost_diag local, *d = P->diag ? &P->diag[g] : &local;
    memset(d, 0, sizeof *d);
    sf_sedpost_opts o = P->opts;
    o.mcmc.seed = ga->seed;
    sf_mcmc_chain *chain = NULL;
    sf_sedpost *sp = NULL;
    double *start = NULL, lp_max = NAN;
    const double *x0 = ga->x0;
    sf_status st = sf_sedpost_alloc(P->m, ga->flux_nmgy, ga->ivar_nmgy2, ga->z, o.prior, 1, &sp);
    if (!st) {
        pthread_mutex_lock(&P->mu);
        s->sp = sp;
        pthread_mutex_unlock(&P->mu);
    }
    if (!st) {
        start = malloc(sizeof(double) * o.mcmc.nwalkers * SF_NU);
        if (!start) st = SF_ERROR(SF_ENOMEM, "out of memory");
        else if (x0) memcpy(start, x0, sizeof(double) * o.mcmc.nwalkers * SF_NU);
        else st = sf_sedpost_start_points(pooled_logp, s, &o, start, &lp_max);
    }
    if (!st) st = sf_sedpost_run(sp, pooled_logp, s, &o, start, &chain);
    if (!st) {
        sf_sedpost_diagnose(sp, chain, d);
        d->start_logp_max = lp_max;
    } else {
        snprintf(d->warning, sizeof d->warning, "%s", sf_last_error());
    }
    P->chains[g] = chain;
    P->status[g] = st;
    free(start);
    pthread_mutex_lock(&P->mu);
    s->sp = NULL;
    pthread_mutex_unlock(&P->mu);
    sf_sedpost_free(sp);
}

static void *worker(void *arg)
{
    slot *s = arg;
    pool *P = s->P;
    pthread_mutex_lock(&P->mu);
    for (;;) {
        while (s->gal < 0 && !s->quit) pthread_cond_wait(&s->cv, &P->mu);
        if (s->quit) break;
        size_t g = (size_t)s->gal;
        pthread_mutex_unlock(&P->mu);
        run_galaxy(s, g);
        pthread_mutex_lock(&P->mu);
        s->gal = -1;
        s->state = FINISHED;
        pthread_cond_signal(&P->coord);
    }
    pthread_mutex_unlock(&P->mu);
    return NULL;
}

/* Evaluate every pending request (slot order).  Called without the lock;
 * the pending workers are blocked. */
static sf_status evaluate(pool *P, char *msg, size_t msglen)
{
    size_t ntot = 0;
    for (size_t k = 0; k < P->nslot; k++)
        if (P->slots[k].state == PENDING) ntot += P->slots[k].n;
    if (ntot > P->cap) {
        size_t cap = ntot > 2 * P->cap ? ntot : 2 * P->cap;
        double *t = realloc(P->theta, sizeof(double) * cap * SF_NTHETA);
        if (t) P->theta = t;
        double *z = realloc(P->z, sizeof(double) * cap);
        if (z) P->z = z;
        double *f = realloc(P->flux, sizeof(double) * cap * SF_NBANDS);
        if (f) P->flux = f;
        slot **ms = realloc(P->map_slot, sizeof(slot *) * cap);
        if (ms) P->map_slot = ms;
        size_t *mr = realloc(P->map_row, sizeof(size_t) * cap);
        if (mr) P->map_row = mr;
        if (!t || !z || !f || !ms || !mr) {
            snprintf(msg, msglen, "out of memory for a pooled batch of %zu points", ntot);
            return SF_ENOMEM;
        }
        P->cap = cap;
    }
    size_t nin = 0;
    for (size_t k = 0; k < P->nslot; k++) {
        slot *s = &P->slots[k];
        if (s->state != PENDING) continue;
        for (size_t i = 0; i < s->n; i++) {
            const double *u = s->u + i * SF_NU;
            double lp = sf_prior_logpdf(s->sp->prior, u);
            s->logp[i] = lp;
            if (lp == -INFINITY) continue;
            sf_u_to_theta(u, P->theta + nin * SF_NTHETA);
            P->z[nin] = s->sp->z;
            P->map_slot[nin] = s;
            P->map_row[nin] = i;
            nin++;
        }
    }
    size_t nchunk = (nin + CHUNK - 1) / CHUNK;
    sf_status fail = SF_OK;
    if (nchunk) {
        /* no more threads than chunks, and no parallel region for one chunk: idle team members would
           spin-wait (libgomp's default policy) and take a core from the galaxies' sampler threads */
        int nt = (size_t)P->nthreads < nchunk ? P->nthreads : (int)nchunk;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
        for (size_t c = 0; c < nchunk; c++) {
            size_t i0 = c * CHUNK, k = nin - i0 < CHUNK ? nin - i0 : CHUNK;
            sf_status st = sf_model_photometry(P->m, P->works[omp_get_thread_num()], k, P->theta + i0 * SF_NTHETA,
                                               P->z + i0, P->flux + i0 * SF_NBANDS, NULL);
            if (st) {
#pragma omp critical(sedpost_pool_err)
                {
                    if (!fail) snprintf(msg, msglen, "%s", sf_last_error());
                    fail = st;
                }
            }
        }
    }
    if (fail) return fail;
    for (size_t j = 0; j < nin; j++) {
        slot *s = P->map_slot[j];
        s->logp[P->map_row[j]] += -0.5 * s->sp->beta * sf_sedpost_chi2_of(s->sp, P->flux + j * SF_NBANDS);
    }
    return SF_OK;
}

static void coordinate(pool *P, size_t G)
{
    size_t next = 0;
    char msg[512];
    pthread_mutex_lock(&P->mu);
    for (;;) {
        /* wait for quiescence: nobody running */
        for (;;) {
            int running = 0;
            for (size_t k = 0; k < P->nslot; k++) running |= P->slots[k].state == RUNNING;
            if (!running) break;
            pthread_cond_wait(&P->coord, &P->mu);
        }
        /* start galaxies in free slots, in index order */
        int started = 0;
        for (size_t k = 0; k < P->nslot; k++) {
            slot *s = &P->slots[k];
            if (s->state == FINISHED) s->state = IDLE;
            if (s->state == IDLE && next < G) {
                s->gal = (long)next++;
                s->state = RUNNING;
                started = 1;
                pthread_cond_signal(&s->cv);
            }
        }
        if (started) continue;
        int pending = 0;
        for (size_t k = 0; k < P->nslot; k++) pending |= P->slots[k].state == PENDING;
        if (!pending) break;
        pthread_mutex_unlock(&P->mu);
        msg[0] = '\0';
        sf_status st = evaluate(P, msg, sizeof msg);
        pthread_mutex_lock(&P->mu);
        for (size_t k = 0; k < P->nslot; k++) {
            slot *s = &P->slots[k];
            if (s->state != PENDING) continue;
            s->rst = st;
            memcpy(s->rmsg, msg, sizeof s->rmsg);
            s->state = RUNNING;
            pthread_cond_signal(&s->cv);
        }
    }
    pthread_mutex_unlock(&P->mu);
}

sf_status sf_sedpost_mcmc_many(const sf_model *m, size_t G, const sf_sedpost_galaxy *gal,
                               const sf_sedpost_opts *opts, size_t concurrent, int nthreads,
                               sf_mcmc_chain **chains, sf_sedpost_diag *diag, sf_status *status)
{
    if (!m || (G && (!gal || !chains || !status))) return SF_ERROR(SF_EINVAL, "NULL argument");
    for (size_t g = 0; g < G; g++) chains[g] = NULL, status[g] = SF_EINTERNAL;
    if (G == 0) return SF_OK;
    pool P;
    memset(&P, 0, sizeof P);
    P.m = m, P.gal = gal, P.chains = chains, P.diag = diag, P.status = status;
    if (opts) P.opts = *opts;
    else sf_sedpost_opts_default(&P.opts);
    if (P.opts.mcmc.nwalkers < 2 * SF_NU || P.opts.mcmc.nwalkers % 2)
        return SF_ERROR(SF_EINVAL, "nwalkers = %zu: need an even number >= %d for 11 parameters",
                        P.opts.mcmc.nwalkers, 2 * SF_NU);
    if (concurrent == 0) concurrent = 32;
    P.nslot = concurrent < G ? concurrent : G;
    P.nthreads = sf_nthreads(nthreads);
    sf_status st = SF_OK;
    P.slots = calloc(P.nslot, sizeof(slot));
    P.works = calloc((size_t)P.nthreads, sizeof(sf_model_work *));
    if (!P.slots || !P.works) st = SF_ERROR(SF_ENOMEM, "out of memory");
    for (int t = 0; !st && t < P.nthreads; t++) st = sf_model_work_alloc(m, CHUNK, &P.works[t]);
    if (!st) {
        pthread_mutex_init(&P.mu, NULL);
        pthread_cond_init(&P.coord, NULL);
        for (size_t k = 0; k < P.nslot; k++) {
            slot *s = &P.slots[k];
            s->P = &P, s->gal = -1, s->state = IDLE;
            pthread_cond_init(&s->cv, NULL);
        }
        for (size_t k = 0; k < P.nslot; k++) {
            if (pthread_create(&P.slots[k].th, NULL, worker, &P.slots[k])) {
                st = SF_ERROR(SF_EINTERNAL, "cannot start thread %zu of %zu", k, P.nslot);
                break;
            }
            P.slots[k].started = 1;
        }
        if (!st) coordinate(&P, G);
        pthread_mutex_lock(&P.mu);
        for (size_t k = 0; k < P.nslot; k++) {
            P.slots[k].quit = 1;
            pthread_cond_signal(&P.slots[k].cv);
        }
        pthread_mutex_unlock(&P.mu);
        for (size_t k = 0; k < P.nslot; k++)
            if (P.slots[k].started) pthread_join(P.slots[k].th, NULL);
        for (size_t k = 0; k < P.nslot; k++) pthread_cond_destroy(&P.slots[k].cv);
        pthread_cond_destroy(&P.coord);
        pthread_mutex_destroy(&P.mu);
    }
    if (P.works)
        for (int t = 0; t < P.nthreads; t++) sf_model_work_free(P.works[t]);
    free(P.works);
    free(P.slots);
    free(P.theta);
    free(P.z);
    free(P.flux);
    free(P.map_slot);
    free(P.map_row);
    return st;
}
