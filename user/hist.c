// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hist.h"

#define HIST_SUB (1 << HIST_SUB_BITS)

struct hist_bin {
	__u32 bucket;
	__u32 n;
};

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

int hist__add(struct hist *h, __u64 v)
{
	unsigned int b = bucket_of(v), lo = 0, hi = h->nbins;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (h->bins[mid].bucket < b)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == h->nbins || h->bins[lo].bucket != b) {
		if (h->nbins == h->cap) {
			unsigned int cap = h->cap ? h->cap * 2 : 2;
			struct hist_bin *n;

			if (cap > HIST_BUCKETS)
				cap = HIST_BUCKETS;
			n = realloc(h->bins, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			h->bins = n;
			h->cap = cap;
		}
		memmove(&h->bins[lo + 1], &h->bins[lo], (h->nbins - lo) * sizeof(*h->bins));
		h->bins[lo] = (struct hist_bin){.bucket = b};
		h->nbins++;
	}
	h->bins[lo].n++;
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
	unsigned long long rank, seen = 0;
	__u64 v = h->max;

	if (!h->count)
		return 0;
	rank = (h->count * pct + 99) / 100;
	if (!rank)
		rank = 1;
	for (unsigned int i = 0; i < h->nbins; i++) {
		seen += h->bins[i].n;
		if (seen >= rank) {
			v = value_of(h->bins[i].bucket);
			break;
		}
	}
	return v < h->min ? h->min : v > h->max ? h->max : v;
}

void hist__dense(const struct hist *h, __u32 *dense)
{
	memset(dense, 0, HIST_BUCKETS * sizeof(*dense));
	for (unsigned int i = 0; i < h->nbins; i++)
		dense[h->bins[i].bucket] = h->bins[i].n;
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
	free(h->bins);
	memset(h, 0, sizeof(*h));
}
