/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * hist: a log-linear histogram of durations (ns), 8 buckets per power of
 * two, kept sparse: only the buckets that have samples, at 8 bytes each and
 * at most HIST_BUCKETS of them, so a histogram that saw one latency costs
 * one bucket and no histogram ever costs more than about 2.4 KB, however
 * many samples. Percentiles by nearest rank, as the midpoint of their
 * bucket (within 6%), kept inside the smallest and largest sample seen.
 * Used for connect() latencies (exhaustion) and hold times (timelines).
 */
#ifndef PT_HIST_H
#define PT_HIST_H

#include <stddef.h>
#include <linux/types.h>

#define HIST_SUB_BITS 3		/* 8 buckets per power of two */
#define HIST_MAX_EXP 40		/* values clamp at 2^40 ns, 18 minutes */
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) << HIST_SUB_BITS)

struct hist_bin {
	__u32 bucket;
	__u32 n;
};

struct hist {
	unsigned long long count;
	__u64 min, max;
	/* Buckets with samples, ascending. The first is kept in line (cap 0):
	 * most histograms of one destination's connect() latencies never see
	 * a second, and a histogram per destination is paid per destination. */
	union {
		struct hist_bin *bins;	/* cap > 0 */
		struct hist_bin one;	/* cap 0 */
	};
	unsigned int nbins, cap;
};

/* 0, or -ENOMEM (the sample is not counted). */
int hist__add(struct hist *h, __u64 v);
/* The pct-th percentile (1..100); 0 when empty. */
__u64 hist__pct(const struct hist *h, unsigned int pct);
/* Every bucket's count into dense (HIST_BUCKETS of them), for those that
 * keep and subtract whole histograms. */
void hist__dense(const struct hist *h, __u32 *dense);
/* The value a bucket stands for: its midpoint. */
__u64 hist__bucket_value(unsigned int b);

/* Empty again, keeping its memory. */
void hist__reset(struct hist *h);
void hist__free(struct hist *h);

#endif /* PT_HIST_H */
