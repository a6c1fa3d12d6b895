/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * output: events formatted as text or JSON Lines, written through one
 * buffer per stream. A failed write (a full disk) drops what was buffered,
 * counts it, says so once and keeps going; the next write that succeeds
 * resumes the stream.
 */
#ifndef PT_OUTPUT_H
#define PT_OUTPUT_H

#include <stdbool.h>
#include "event.h"

/* 2: comm is the process's name and "thread" the thread's where it
 * differs (in 1, comm was the thread's); bind-fail has "held_by"; the
 * "accept" event. Readers take 1 and 2. */
#define PT_SCHEMA_VERSION 2

enum output_format {
	OUTPUT_TEXT,
	OUTPUT_JSON,
	OUTPUT_CSV,
};

/* What the header record says about the run. */
struct run_info {
	const char *version;
	const char *host;
	const char *kernel;
	__u64 start_mono_ns;
	__u64 start_realtime_ns;
	__u16 range_lo;		/* porttrace's own namespace's ephemeral range */
	__u16 range_hi;
};

/* What the trailer record says about the run. */
struct run_stats {
	unsigned long long lost;		/* kernel records lost */
	unsigned long long bad;			/* malformed records skipped */
	unsigned long long aged;		/* decoder entries whose closing record never came */
	__u64 end_mono_ns;
};

struct output;

/* fd is not closed by output__free(); name is used in messages only. */
struct output *output__new(int fd, const char *name, enum output_format fmt, __u64 base_ns);
void output__free(struct output *o);

int output__event(void *o, const struct pt_event *ev);	/* a pt_event_fn */
void output__header(struct output *o, const struct run_info *info);
void output__trailer(struct output *o, const struct run_stats *st);
/* Write out what is buffered; 0 or -errno (already reported). */
int output__flush(struct output *o);
/* Point the stream at a new fd (log reopen after rotation); flush first,
 * while the old fd is still open. */
void output__set_fd(struct output *o, int fd);

/* Name owners by systemd unit or container, and namespaces by their
 * "ip netns" names, in text and JSON (either may be NULL: not named). */
struct cgroups;
struct netns;
void output__set_names(struct output *o, struct cgroups *cg, struct netns *ns);

unsigned long long output__written(const struct output *o);
unsigned long long output__dropped(const struct output *o);

int output__parse_format(const char *s, enum output_format *fmt);

/* Append a preformatted line (e.g. an exhaustion snapshot record) to the
 * stream; it counts as no event. 0, or -E2BIG if it can never fit. */
int output__raw(struct output *o, const char *line, size_t len);

/* What held a port (a bind-fail's explanation), for people: "1 listener
 * (pid 42 nginx), 3 time-wait (the last ends in 59.8s)"; times from now_ns.
 * Returns the length written to buf (len > 0). */
size_t output__held_text(char *buf, size_t len, const struct pt_held *h, __u64 now_ns);

/* Who can reach a listener on addr: "wildcard", "loopback" or "address",
 * as "scope" of listen events says. */
const char *output__listen_scope(__u8 family, const __u8 *addr);

#endif /* PT_OUTPUT_H */
