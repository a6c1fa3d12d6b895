/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * logfile: the file events are appended to. Opened before anything is
 * attached, so that a bad path fails fast; created 0640, never through a
 * symlink, and locked so that two porttraces cannot interleave one file.
 * An existing file owned by another user, or writable by group or others,
 * is refused.
 */
#ifndef PT_LOGFILE_H
#define PT_LOGFILE_H

#include <stdbool.h>

struct logfile;

/* Says why on stderr and returns NULL when path cannot be used. */
struct logfile *logfile__open(const char *path);
void logfile__close(struct logfile *l);
int logfile__fd(const struct logfile *l);
const char *logfile__path(const struct logfile *l);
/* After logrotate moved the file away: open path anew. 0: a new file;
 * 1: path still names the file written, nothing was done; -errno: on
 * failure the old file stays in use. */
int logfile__reopen(struct logfile *l);
/* Whether path names the very file l writes (a hard link, another
 * spelling of the path). */
bool logfile__is(const struct logfile *l, const char *path);

/* Bytes in the file now. */
long long logfile__size(const struct logfile *l);

/*
 * Rotate: FILE.N.gz -> FILE.N+1.gz (keeping keep pieces), FILE -> FILE.1.gz,
 * compressed by a background thread so that tracing never waits for zlib,
 * then a new, empty FILE. 0 or -errno (said on stderr); on failure the
 * current file stays in use. When FILE is no longer the file written (removed
 * or moved away), FILE is started anew instead and no piece moves.
 */
int logfile__rotate(struct logfile *l, unsigned int keep);

#endif /* PT_LOGFILE_H */
