/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * logreader: a porttrace JSON Lines log back into events, so that offline
 * analysis runs the very consumers of a live run. Reads rotated pieces
 * (FILE.N.gz ... FILE.1.gz, then FILE) oldest first. Bad input is data: a
 * garbage or truncated line, an unknown record type or a newer schema gets
 * a warning with file and line, and reading goes on.
 */
#ifndef PT_LOGREADER_H
#define PT_LOGREADER_H

#include <stddef.h>
#include "event.h"

struct logreader;

struct logreader *logreader__new(void);
void logreader__free(struct logreader *r);

/*
 * Read path and its rotated pieces. Returns 0, fn's first non-zero result,
 * or -errno when path cannot be opened at all (said on stderr).
 */
int logreader__read(struct logreader *r, const char *path, pt_event_fn fn, void *ctx);

/* Read each of files in turn; stops at the first that cannot be opened. */
int logreader__read_all(struct logreader *r, char *const *files, int nfiles, pt_event_fn fn,
			void *ctx);

/* Parse one line (no newline needed). 1: ev filled; 0: a line that is not an
 * event (header, trailer); <0: malformed. For tests and fuzzing. */
int logreader__parse_line(struct logreader *r, const char *line, size_t len, struct pt_event *ev);

unsigned long logreader__warnings(const struct logreader *r);
/* From the header, 0 when none was seen. */
unsigned long long logreader__start_realtime_ns(const struct logreader *r);
unsigned long long logreader__start_mono_ns(const struct logreader *r);
/* The host the header names (raw bytes from the log), NULL when none. */
const char *logreader__host(const struct logreader *r);

#endif /* PT_LOGREADER_H */
