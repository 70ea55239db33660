/* The generator's rejection loop in C: the hyper-parameter draws ``generate`` makes until one is kept (draws.py).
 *
 * Most of a problem's time went to draws that are thrown away: a draw (``generate.hyper``) and its structure
 * graphs (``build.structure``, ``choose``, ``sort``) are kept only when the realised op equals the target. This
 * module runs that loop on a copy of the ``random.Random`` state -- the same Mersenne Twister, the same
 * ``_randbelow``, ``random()``, ``gauss`` and ``sample`` as CPython's -- mirroring build.py line for line (each
 * function here names its Python twin), and returns the state after the first kept draw with that draw's build
 * as the fields of ``build.Build``. The later stages (design, unused, values, texts) stay in Python.
 *
 * Sizes are the generator's: depths and widths in {2, 3, 4}, so a parameter key (kind, i, j, k) is the int
 * kind << 6 | i << 4 | j << 2 | k (< 128) and a structure edge (i, j, k) the int i << 4 | j << 2 | k.
 * Compiled with -ffp-contract=off (every float operation rounds as Python's does) and without the sin/cos builtins
 * (gcc would fuse them into one sincos call; Python calls the two).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ CPython's Mersenne Twister */
#define MT_N 624
#define MT_M 397

typedef struct {
    uint32_t mt[MT_N];
    int index;
    int has_gauss;
    double gauss_next;
} Rng;

static uint32_t genrand(Rng *r) {
    static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
    uint32_t y;
    uint32_t *mt = r->mt;
    if (r->index >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        y = (mt[MT_N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
        r->index = 0;
    }
    y = mt[r->index++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

static double uniform(Rng *r) { /* random.random() */
    uint32_t a = genrand(r) >> 5, b = genrand(r) >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

static int bit_length(uint32_t n) {
    int k = 0;
    while (n) {
        k++;
        n >>= 1;
    }
    return k;
}

static int below(Rng *r, int n) { /* random._randbelow_with_getrandbits(n), n >= 1 */
    int k = bit_length((uint32_t)n);
    uint32_t x = genrand(r) >> (32 - k);
    while (x >= (uint32_t)n) x = genrand(r) >> (32 - k);
    return (int)x;
}

static double gauss01(Rng *r) { /* random.gauss(0.0, 1.0) */
    double z;
    if (r->has_gauss) {
        r->has_gauss = 0;
        z = r->gauss_next;
    } else {
        double x2pi = uniform(r) * (2.0 * 3.141592653589793);
        double g2rad = sqrt(-2.0 * log(1.0 - uniform(r)));
        z = cos(x2pi) * g2rad;
        r->gauss_next = sin(x2pi) * g2rad;
        r->has_gauss = 1;
    }
    return 0.0 + z * 1.0;
}

/* random.sample(population, k) for a population of ints: the result is written to ``out``. */
static void sample(Rng *r, const int *pop, int n, int k, int *out) {
    int setsize = 21;
    if (k > 5) setsize += (int)pow(4.0, ceil(log((double)(k * 3)) / log(4.0)));
    if (n <= setsize) {
        int pool[128];
        memcpy(pool, pop, sizeof(int) * n);
        for (int i = 0; i < k; i++) {
            int j = below(r, n - i);
            out[i] = pool[j];
            pool[j] = pool[n - i - 1];
        }
    } else {
        char selected[128] = {0};
        for (int i = 0; i < k; i++) {
            int j = below(r, n);
            while (selected[j]) j = below(r, n);
            selected[j] = 1;
            out[i] = pop[j];
        }
    }
}

/* build._weighted: one random() against the running remainder of the weights */
static int weighted(Rng *r, const double *w, int n, double total) {
    double x = uniform(r) * total;
    for (int i = 0; i < n; i++) {
        x -= w[i];
        if (x < 0) return i;
    }
    return n - 1;
}

/* build.plain_sum */
static double plain_sum(const double *w, int n) {
    double f = 0.0;
    for (int i = 0; i < n; i++) f += w[i];
    return f;
}

/* ------------------------------------------------------------------ lists of small ints */
#define CAP 128
typedef struct {
    int n;
    int v[CAP];
} List;

static void list_remove(List *l, int x) { /* list.remove: the first occurrence, order kept */
    for (int i = 0; i < l->n; i++)
        if (l->v[i] == x) {
            memmove(l->v + i, l->v + i + 1, sizeof(int) * (l->n - i - 1));
            l->n--;
            return;
        }
}

#define EDGE(i, j, k) ((i) << 4 | (j) << 2 | (k))
#define ABS(t) (64 | (t))
#define E_I(t) (((t) >> 4) & 3)
#define E_J(t) (((t) >> 2) & 3)
#define E_K(t) ((t) & 3)
#define IS_ABS(key) ((key) >> 6)

/* ------------------------------------------------------------------ one construction (build.Build) */
typedef struct {
    int d, sizes[4];
    int nkids[4][4], kids[4][4][4]; /* children[i][j], ascending */
    List remain, inter, chosen;
    int n_op_min;
} Build;

static void structure(Rng *r, Build *b, int d, int w0, int w1, int e, double p) {
    int lo = (d - 1) * w0, hi = (d - 1) * w1 * w1;
    e = e > lo ? e : lo;
    e = e < hi ? e : hi;
    b->d = d;
    for (int i = 0; i < d; i++) b->sizes[i] = w0;
    int *sizes = b->sizes;
    for (;;) {
        int max_v = 0, min_v = -sizes[0], open[4], nopen = 0;
        for (int i = 0; i < d - 1; i++) max_v += sizes[i] * sizes[i + 1];
        for (int i = 0; i < d; i++) {
            min_v += sizes[i];
            if (sizes[i] < w1) open[nopen++] = i;
        }
        if (max_v < e)
            sizes[open[below(r, nopen)]]++;
        else if (min_v == e)
            break;
        else if (uniform(r) < p) {
            if (!nopen) break;
            sizes[open[below(r, nopen)]]++;
        } else
            break;
    }
    int parent[4][4];
    for (int i = 0; i < d - 1; i++)
        for (int k = 0; k < sizes[i + 1]; k++) parent[i][k] = below(r, sizes[i]);
    List *present = &b->remain;
    present->n = 0;
    for (int i = 0; i < d - 1; i++)
        for (int k = 0; k < sizes[i + 1]; k++) present->v[present->n++] = EDGE(i, parent[i][k], k);
    int absent[64], nabsent = 0;
    for (int i = 0; i < d - 1; i++)
        for (int j = 0; j < sizes[i]; j++)
            for (int k = 0; k < sizes[i + 1]; k++)
                if (parent[i][k] != j) absent[nabsent++] = EDGE(i, j, k);
    sample(r, absent, nabsent, e - present->n, present->v + present->n);
    present->n = e;
    memset(b->nkids, 0, sizeof(b->nkids));
    for (int x = 0; x < present->n; x++) {
        int t = present->v[x], i = E_I(t), j = E_J(t), k = E_K(t);
        int *c = b->kids[i][j], n = b->nkids[i][j]++;
        while (n > 0 && c[n - 1] > k) { /* insertion sort: ascending */
            c[n] = c[n - 1];
            n--;
        }
        c[n] = k;
    }
    b->inter.n = 0;
    for (int i = 0; i < d - 1; i++)
        for (int j = 0; j < sizes[i]; j++)
            for (int k = i + 1; k < d; k++) b->inter.v[b->inter.n++] = EDGE(i, j, k);
    b->chosen.n = 0;
    b->n_op_min = 0;
}

static int has_childless(const Build *b) {
    for (int i = 0; i < b->d - 1; i++)
        for (int j = 0; j < b->sizes[i]; j++)
            if (!b->nkids[i][j]) return 1;
    return 0;
}

static int op_bound(const Build *b) {
    int total = b->remain.n;
    for (int i = 0; i < b->d - 1; i++)
        for (int j = 0; j < b->sizes[i]; j++) {
            int n = b->nkids[i][j];
            total += (2 * n - 1 > 0 ? 2 * n - 1 : 0) * (b->d - i - 2) + (n > 1 ? n - 1 : n);
        }
    return total;
}

/* ------------------------------------------------------------------ stage 2: choose */
typedef struct {
    char inter[64], remain[64]; /* membership of not-yet-chosen edges (the Python sets) */
} Sets;

static int cost(const Build *b, int t, const Sets *s, List *add, char *used) {
    int i = E_I(t), j = E_J(t), k = E_K(t), count = 0;
    used[ABS(t)] = 1;
    add->v[add->n++] = ABS(t);
    int c = b->nkids[i][j];
    for (int y = 0; y < c; y++) {
        int x = b->kids[i][j][y];
        if (k > i + 1 && s->inter[EDGE(i + 1, x, k)] && !used[ABS(EDGE(i + 1, x, k))])
            count += cost(b, EDGE(i + 1, x, k), s, add, used);
        int u = EDGE(i, j, x);
        if (s->remain[u] && !used[u]) {
            used[u] = 1;
            add->v[add->n++] = u;
            count += 1;
        }
    }
    if (k == i + 1) return count + (c > 1 ? c - 1 : 1);
    return count + (2 * c - 1 > 1 ? 2 * c - 1 : 1);
}

static int take_instances(Rng *r, Build *b, int count) {
    int picks[CAP];
    if (count > b->remain.n) count = b->remain.n;
    sample(r, b->remain.v, b->remain.n, count, picks);
    for (int x = 0; x < count; x++) {
        list_remove(&b->remain, picks[x]);
        b->chosen.v[b->chosen.n++] = picks[x];
    }
    return count;
}

static void commit(Build *b, const List *add, Sets *s, List *by_diff) {
    for (int x = 0; x < add->n; x++) {
        int key = add->v[x], t = key & 63;
        if (IS_ABS(key)) {
            list_remove(&b->inter, t);
            s->inter[t] = 0;
            list_remove(&by_diff[E_K(t) - E_I(t)], t);
        } else {
            list_remove(&b->remain, t);
            s->remain[t] = 0;
        }
        b->chosen.v[b->chosen.n++] = key;
    }
}

static void choose(Rng *r, Build *b, int n, int m) {
    int bound = op_bound(b);
    if (bound < n) n = bound;
    int n_fix = m - n, lowest = 1, highest = b->d - 1;
    Sets s;
    memset(&s, 0, sizeof(s));
    List by_diff[4];
    for (int x = 0; x < 4; x++) by_diff[x].n = 0;
    for (int x = 0; x < b->inter.n; x++) {
        int t = b->inter.v[x];
        s.inter[t] = 1;
        List *l = &by_diff[E_K(t) - E_I(t)];
        l->v[l->n++] = t;
    }
    for (int x = 0; x < b->remain.n; x++) s.remain[b->remain.v[x]] = 1;
    int n_inter = b->inter.n;
    for (int pass = 0; pass < 10000; pass++) {
        if (n <= 0) break;
        if (!n_inter) {
            int got = take_instances(r, b, n + n_fix);
            b->n_op_min = m - n - n_fix + got;
            return;
        }
        List prev, add;
        int has_prev = 0, prev_count = 0;
        for (int diff = 1; diff < b->d; diff++) {
            List *cands = &by_diff[diff];
            if (!cands->n) {
                if (diff == lowest)
                    lowest++;
                else if (diff == highest)
                    highest--;
                continue;
            }
            char used[128] = {0};
            add.n = 0;
            int count = cost(b, cands->v[below(r, cands->n)], &s, &add, used);
            if ((diff == lowest && count > n) || (count > n && !has_prev)) {
                int got = take_instances(r, b, n + n_fix);
                b->n_op_min = m - n - n_fix + got;
                return;
            }
            if (count <= n) {
                if (diff < highest) {
                    prev = add;
                    prev_count = count;
                    has_prev = 1;
                    continue;
                }
                commit(b, &add, &s, by_diff);
                n -= count;
                break;
            }
            commit(b, &prev, &s, by_diff);
            n -= prev_count;
            break;
        }
        n_inter = b->inter.n;
    }
    b->n_op_min = m - n_fix + take_instances(r, b, n_fix);
}

/* ------------------------------------------------------------------ stage 3: sort; the op it reaches */
/* Returns the op ``design(s)`` would reach, or -1 when the sort gets stuck (build.SortFailed). */
typedef struct {
    int npreds[128], preds[128][9]; /* build.preds: operands of each chosen key, RNG excluded until ``design`` */
    int nplaced, placed[CAP];       /* the backward order; build.topo is it reversed */
} Sorted;

static int sort_op(Rng *r, const Build *b, Sorted *so, int paper, int s_op) {
    int *npreds = so->npreds, (*preds)[9] = so->preds, out_deg[128] = {0};
    memset(so->npreds, 0, sizeof(so->npreds));
    char in_stack[128] = {0};
    const List *chosen = &b->chosen;
    for (int x = 0; x < chosen->n; x++) {
        int key = chosen->v[x];
        if (!IS_ABS(key)) continue;
        int t = key & 63, i = E_I(t), j = E_J(t), k = E_K(t);
        for (int y = 0; y < b->nkids[i][j]; y++) {
            int c = b->kids[i][j][y];
            preds[key][npreds[key]++] = EDGE(i, j, c);
            if (k > i + 1) preds[key][npreds[key]++] = ABS(EDGE(i + 1, c, k));
        }
    }
    char is_chosen[128] = {0};
    for (int x = 0; x < chosen->n; x++) is_chosen[chosen->v[x]] = 1;
    for (int x = 0; x < chosen->n; x++) {
        int key = chosen->v[x];
        for (int y = 0; y < npreds[key]; y++) {
            if (!is_chosen[preds[key][y]]) return -2; /* an operand outside the chosen set: not expected */
            out_deg[preds[key][y]]++;
        }
    }
    List ready, remain, pool;
    ready.n = 0;
    for (int x = 0; x < chosen->n; x++)
        if (!out_deg[chosen->v[x]]) {
            ready.v[ready.n++] = chosen->v[x];
        }
    remain = *chosen;
    pool = ready;
    double p0 = uniform(r);
    double g = fabs(gauss01(r));
    double weight[3] = {exp(g * 0), exp(g * 1), exp(g * 2)};
    int *placed = so->placed, nplaced = 0;
    while (remain.n) {
        if (!pool.n) return -1;
        int q = pool.v[below(r, pool.n)];
        placed[nplaced++] = q;
        list_remove(&remain, q);
        list_remove(&ready, q);
        for (int y = 0; y < npreds[q]; y++) {
            int v = preds[q][y];
            if (--out_deg[v] == 0) {
                ready.v[ready.n++] = v;
            }
        }
        in_stack[q] = 0;
        if (!IS_ABS(q)) {
            int must = 1;
            for (int x = 0; x < ready.n; x++)
                if (in_stack[ready.v[x]]) {
                    must = 0;
                    break;
                }
            if ((uniform(r) < p0 || must) && remain.n) {
                const List *cands = must ? &ready : &remain;
                if (!cands->n) return -2; /* Python would raise IndexError: not expected */
                double w[CAP];
                for (int x = 0; x < cands->n; x++) {
                    int c = cands->v[x];
                    int off = paper ? in_stack[c] : !in_stack[c];
                    w[x] = weight[IS_ABS(c) + off];
                }
                int pick = cands->v[weighted(r, w, cands->n, plain_sum(w, cands->n))];
                if (npreds[q] >= 9) return -2;
                preds[q][npreds[q]++] = pick;
                in_stack[pick] = 1;
            }
        } else {
            for (int y = 0; y < npreds[q]; y++) in_stack[preds[q][y]] = 1;
        }
        pool.n = 0;
        for (int x = 0; x < ready.n; x++)
            if (in_stack[ready.v[x]]) pool.v[pool.n++] = ready.v[x];
    }
    so->nplaced = nplaced;
    /* build.realized_op over topo = placed reversed */
    int extra = 0;
    for (int x = 0; x < nplaced; x++) {
        int key = placed[nplaced - 1 - x];
        if (IS_ABS(key)) continue;
        int cap = (x + 1 < 4 ? x + 1 : 4) - 2;
        extra += cap > 0 ? cap : 0;
    }
    int surplus = (b->n_op_min > s_op ? b->n_op_min : s_op) - b->n_op_min;
    return (surplus < extra ? surplus : extra) + b->n_op_min;
}

/* ------------------------------------------------------------------ the plan of one (config, target) */
typedef struct {
    int s_fixed, s_lo, n_s;
    double s_w[64], s_total;
    int n_depths, depths[3], n_widths, widths[3], max_edge;
    double dw[64][3], dt[64], ww[64][3], wt[64]; /* softmax weights and their sums, by s */
    int childless, paper, tries;
} Plan;

static int read_doubles(PyObject *seq, double *out, int cap) {
    PyObject *f = PySequence_Fast(seq, "expected a sequence of numbers");
    if (!f) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(f);
    if (n > cap) {
        Py_DECREF(f);
        PyErr_SetString(PyExc_ValueError, "too many weights");
        return -1;
    }
    for (Py_ssize_t x = 0; x < n; x++) {
        out[x] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(f, x));
        if (out[x] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(f);
            return -1;
        }
    }
    Py_DECREF(f);
    return (int)n;
}

static int read_ints(PyObject *seq, int *out, int cap) {
    double tmp[64];
    int n = read_doubles(seq, tmp, cap);
    for (int x = 0; x < n; x++) out[x] = (int)tmp[x];
    return n;
}

static void plan_free(PyObject *capsule) { PyMem_Free(PyCapsule_GetPointer(capsule, "physlm.draws.plan")); }

/* plan(s_fixed, s_lo, s_weights, s_total, depths, widths, max_edge, table, childless, paper, tries)
 * table[s] = (depth weights, their sum, width weights, their sum) for every s a draw can take. */
static PyObject *make_plan(PyObject *self, PyObject *args) {
    Plan p;
    PyObject *s_w, *depths, *widths, *table;
    if (!PyArg_ParseTuple(args, "iiOdOOiOppi", &p.s_fixed, &p.s_lo, &s_w, &p.s_total, &depths, &widths, &p.max_edge,
                          &table, &p.childless, &p.paper, &p.tries))
        return NULL;
    if ((p.n_s = read_doubles(s_w, p.s_w, 64)) < 0) return NULL;
    if ((p.n_depths = read_ints(depths, p.depths, 3)) < 0) return NULL;
    if ((p.n_widths = read_ints(widths, p.widths, 3)) < 0) return NULL;
    Py_ssize_t nt = PySequence_Size(table);
    if (nt < 0 || nt > 64) {
        PyErr_SetString(PyExc_ValueError, "table: at most 64 rows");
        return NULL;
    }
    for (Py_ssize_t s = 0; s < nt; s++) {
        PyObject *row = PySequence_GetItem(table, s);
        if (!row) return NULL;
        if (row != Py_None) {
            PyObject *dw, *ww;
            if (!PyArg_ParseTuple(row, "OdOd", &dw, &p.dt[s], &ww, &p.wt[s]) || read_doubles(dw, p.dw[s], 3) < 0 ||
                read_doubles(ww, p.ww[s], 3) < 0) {
                Py_DECREF(row);
                return NULL;
            }
        }
        Py_DECREF(row);
    }
    Plan *heap = PyMem_Malloc(sizeof(Plan));
    if (!heap) return PyErr_NoMemory();
    *heap = p;
    return PyCapsule_New(heap, "physlm.draws.plan", plan_free);
}

/* ------------------------------------------------------------------ one hyper-parameter draw */
/* generate._try_build: 1 when the draw is kept, 0 when rejected, -2 on an unexpected state. */
static int attempt(Rng *r, const Plan *p, int target, Build *kept, Sorted *so, int *s_kept) {
    int s;
    if (p->s_fixed >= 0)
        s = p->s_fixed;
    else
        s = p->s_lo + weighted(r, p->s_w, p->n_s, p->s_total);
    if (s >= 64) return -2;
    int a = 1 + below(r, s), b2 = 1 + below(r, s);
    int n = a > b2 ? a : b2;
    int m = n + below(r, s - n + 1);
    int d, w0, w1;
    for (;;) {
        d = p->depths[weighted(r, p->dw[s], p->n_depths, p->dt[s])];
        int t0 = p->widths[weighted(r, p->ww[s], p->n_widths, p->wt[s])];
        int t1 = p->widths[weighted(r, p->ww[s], p->n_widths, p->wt[s])];
        w0 = t0 < t1 ? t0 : t1;
        w1 = t0 < t1 ? t1 : t0;
        if ((d - 1) * w0 <= p->max_edge) break;
    }
    double prob = uniform(r);
    int lo = (d - 1) * w0;
    int e1 = lo + below(r, p->max_edge - lo + 1), e2 = lo + below(r, p->max_edge - lo + 1);
    int e = e1 < e2 ? e1 : e2;
    *s_kept = s;
    for (int t = 0; t < p->tries; t++) {
        structure(r, kept, d, w0, w1, e, prob);
        if (!p->childless && has_childless(kept)) continue;
        choose(r, kept, n, m);
        int op = sort_op(r, kept, so, p->paper, s);
        if (op == -1) continue;
        if (op < 0) return -2;
        return op == target;
    }
    return 0;
}

static int read_state(PyObject *state, PyObject *gauss, Rng *r) {
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != MT_N + 1) {
        PyErr_SetString(PyExc_ValueError, "state: expected the 625 ints of random.getstate()[1]");
        return -1;
    }
    for (int x = 0; x < MT_N; x++) {
        unsigned long v = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(state, x));
        if (v == (unsigned long)-1 && PyErr_Occurred()) return -1;
        r->mt[x] = (uint32_t)v;
    }
    long index = PyLong_AsLong(PyTuple_GET_ITEM(state, MT_N));
    if (index == -1 && PyErr_Occurred()) return -1;
    if (index < 0 || index > MT_N) {
        PyErr_SetString(PyExc_ValueError, "state: the index must be in 0..624");
        return -1;
    }
    r->index = (int)index;
    r->has_gauss = gauss != Py_None;
    r->gauss_next = r->has_gauss ? PyFloat_AsDouble(gauss) : 0.0;
    if (r->has_gauss && r->gauss_next == -1.0 && PyErr_Occurred()) return -1;
    return 0;
}

static PyObject *write_state(const Rng *r) { /* (version 3, the 625 ints, gauss_next): random.setstate's form */
    PyObject *t = PyTuple_New(MT_N + 1);
    if (!t) return NULL;
    for (int x = 0; x < MT_N; x++) PyTuple_SET_ITEM(t, x, PyLong_FromUnsignedLong(r->mt[x]));
    PyTuple_SET_ITEM(t, MT_N, PyLong_FromLong(r->index));
    PyObject *g = r->has_gauss ? PyFloat_FromDouble(r->gauss_next) : Py_NewRef(Py_None);
    return Py_BuildValue("(iNN)", 3, t, g);
}

/* Python objects for keys and edges, made once: (kind, i, j, k) for key < 128, (i, j, k) for edge < 64. */
static PyObject *KEYS[128], *EDGES[64];

static int make_tuples(void) {
    for (int key = 0; key < 128; key++) {
        int t = key & 63;
        KEYS[key] = Py_BuildValue("(iiii)", IS_ABS(key), E_I(t), E_J(t), E_K(t));
        if (!KEYS[key]) return -1;
        if (key < 64 && !(EDGES[key] = Py_BuildValue("(iii)", E_I(t), E_J(t), E_K(t)))) return -1;
    }
    return 0;
}

static PyObject *edge_list(const List *l) {
    PyObject *out = PyList_New(l->n);
    for (int x = 0; out && x < l->n; x++) PyList_SET_ITEM(out, x, Py_NewRef(EDGES[l->v[x]]));
    return out;
}

static PyObject *key_list(const int *v, int n, int reverse) {
    PyObject *out = PyList_New(n);
    for (int x = 0; out && x < n; x++) PyList_SET_ITEM(out, x, Py_NewRef(KEYS[v[reverse ? n - 1 - x : x]]));
    return out;
}

/* The kept build as build.Build's fields: (d, sizes, children, remain, inter, chosen, preds, n_op_min, topo). */
static PyObject *build_fields(const Build *b, const Sorted *so) {
    PyObject *sizes = PyList_New(b->d), *children = PyList_New(b->d), *preds = PyDict_New();
    if (!sizes || !children || !preds) goto fail;
    for (int i = 0; i < b->d; i++) {
        PyList_SET_ITEM(sizes, i, PyLong_FromLong(b->sizes[i]));
        PyObject *layer = PyList_New(b->sizes[i]);
        if (!layer) goto fail;
        PyList_SET_ITEM(children, i, layer);
        for (int j = 0; j < b->sizes[i]; j++) {
            int n = i < b->d - 1 ? b->nkids[i][j] : 0;
            PyObject *c = PyList_New(n);
            if (!c) goto fail;
            PyList_SET_ITEM(layer, j, c);
            for (int y = 0; y < n; y++) PyList_SET_ITEM(c, y, PyLong_FromLong(b->kids[i][j][y]));
        }
    }
    for (int x = 0; x < b->chosen.n; x++) {
        int key = b->chosen.v[x];
        PyObject *ops = key_list(so->preds[key], so->npreds[key], 0);
        if (!ops || PyDict_SetItem(preds, KEYS[key], ops) < 0) {
            Py_XDECREF(ops);
            goto fail;
        }
        Py_DECREF(ops);
    }
    return Py_BuildValue("(iNNNNNNiN)", b->d, sizes, children, edge_list(&b->remain), edge_list(&b->inter),
                         key_list(b->chosen.v, b->chosen.n, 0), preds, b->n_op_min,
                         key_list(so->placed, so->nplaced, 1));
fail:
    Py_XDECREF(sizes);
    Py_XDECREF(children);
    Py_XDECREF(preds);
    return NULL;
}

/* find(plan, state, gauss_next, target, left) -> (draws used, state, kept): runs up to ``left`` draws from a
 * random.Random state and returns the state after the first kept draw with that draw's (s, build fields), or,
 * when none is kept, the state after them all and None; (0, None, None) when the C loop met something it does
 * not mirror (the caller then runs the draws in Python). */
static PyObject *find(PyObject *self, PyObject *args) {
    PyObject *capsule, *state, *gauss;
    int target, left;
    if (!PyArg_ParseTuple(args, "OOOii", &capsule, &state, &gauss, &target, &left)) return NULL;
    const Plan *p = PyCapsule_GetPointer(capsule, "physlm.draws.plan");
    if (!p) return NULL;
    Rng r;
    Build b;
    Sorted so;
    int s;
    if (read_state(state, gauss, &r) < 0) return NULL;
    for (int used = 1; used <= left; used++) {
        if (used % 256 == 0 && PyErr_CheckSignals() < 0) return NULL; /* Ctrl-C during an unreachable op */
        int kept = attempt(&r, p, target, &b, &so, &s);
        if (kept < 0) return Py_BuildValue("(iOO)", 0, Py_None, Py_None);
        if (kept) return Py_BuildValue("(iN(iN))", used, write_state(&r), s, build_fields(&b, &so));
    }
    return Py_BuildValue("(iNO)", left, write_state(&r), Py_None);
}

static PyMethodDef methods[] = {
    {"plan", make_plan, METH_VARARGS, "Parse one (config, target)'s draw tables into a capsule."},
    {"find", find, METH_VARARGS, "Run the rejection loop from a random.Random state; see physlm/igsm/draws.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_draws", NULL, -1, methods};

PyMODINIT_FUNC PyInit__draws(void) {
    if (make_tuples() < 0) return NULL;
    return PyModule_Create(&module);
}
