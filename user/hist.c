// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hist.h"

#define HIST_SUB (1 << HIST_SUB_BITS)

static unsigned int bucket_of(__u64 v)
{
	int exp;

	if (v < HIST_SUB)
		return v;
	if (v >= 1ULL << HIST_MAX_EXP)
		v = (1ULL << HIST_MAX_EXP) - 1;
	exp = 63 - __builtin_clzll(v);
	return (exp - HIST_SUB_BITS + 1) * HIST_SUB + ((v >> (exp - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

static __u64 value_of(unsigned int b)
{
	unsigned int exp, sub;

	if (b < HIST_SUB)
		return b;
	exp = b / HIST_SUB + HIST_SUB_BITS - 1;
	sub = b % HIST_SUB;
	return ((__u64)(HIST_SUB + sub) << (exp - HIST_SUB_BITS)) +
	       ((1ULL << (exp - HIST_SUB_BITS)) >> 1);
}

static struct hist_bin *bins_of(struct hist *h)
{
	return h->cap ? h->bins : &h->one;
}

static const struct hist_bin *cbins_of(const struct hist *h)
{
	return h->cap ? h->bins : &h->one;
}

/* Room for one more bucket: out of line from the second one on. */
static int grow(struct hist *h)
{
	unsigned int cap = h->cap ? h->cap * 2 : 2;
	struct hist_bin *n;

	if (cap > HIST_BUCKETS)
		cap = HIST_BUCKETS;
	n = realloc(h->cap ? h->bins : NULL, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (!h->cap)
		n[0] = h->one;
	h->bins = n;
	h->cap = cap;
	return 0;
}

int hist__add(struct hist *h, __u64 v)
{
	unsigned int b = bucket_of(v), lo = 0, hi = h->nbins;
	struct hist_bin *bins = bins_of(h);

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (bins[mid].bucket < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == h->nbins || bins[lo].bucket != b) {
		if (h->nbins == (h->cap ? h->cap : 1)) {
			if (grow(h))
				return -ENOMEM;
			bins = h->bins;
		}
		memmove(&bins[lo + 1], &bins[lo], (h->nbins - lo) * sizeof(*bins));
		bins[lo] = (struct hist_bin){.bucket = b};
		h->nbins++;
	}
	bins[lo].n++;
	if (!h->count || v < h->min)
		h->min = v;
	if (!h->count || v > h->max)
		h->max = v;
	h->count++;
	return 0;
}

/* Nearest rank: the smallest value with at least pct% of samples at or
 * below it. */
__u64 hist__pct(const struct hist *h, unsigned int pct)
{
	const struct hist_bin *bins = cbins_of(h);
	unsigned long long rank, seen = 0;
	__u64 v = h->max;

	if (!h->count)
		return 0;
	rank = (h->count * pct + 99) / 100;
	if (!rank)
		rank = 1;
	for (unsigned int i = 0; i < h->nbins; i++) {
		seen += bins[i].n;
		if (seen >= rank) {
			v = value_of(bins[i].bucket);
			break;
		}
	}
	return v < h->min ? h->min : v > h->max ? h->max : v;
}

void hist__dense(const struct hist *h, __u32 *dense)
{
	const struct hist_bin *bins = cbins_of(h);

	memset(dense, 0, HIST_BUCKETS * sizeof(*dense));
	for (unsigned int i = 0; i < h->nbins; i++)
		dense[bins[i].bucket] = bins[i].n;
}

__u64 hist__bucket_value(unsigned int b)
{
	return value_of(b);
}

void hist__reset(struct hist *h)
{
	h->count = h->min = h->max = 0;
	h->nbins = 0;
}

void hist__free(struct hist *h)
{
	if (h->cap)
		free(h->bins);
	memset(h, 0, sizeof(*h));
}
