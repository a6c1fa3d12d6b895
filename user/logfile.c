// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "log.h"
#include "logfile.h"

struct logfile {
	char *path;
	int fd;
	pthread_t zipper;	/* compressing the last rotated piece */
	bool zipping;
	char *zip_src, *zip_dst;
};

static int open_locked(const char *path)
{
	struct stat st;
	int fd, err;

	/* O_NOFOLLOW: a symlink planted at the log's path must not redirect
	 * a root process's writes. */
	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		err = errno;
		if (err == ELOOP)
			p_err("refusing to write %s: it is a symbolic link", path);
		else
			p_err("cannot write %s: %s", path, strerror(err));
		return -err;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		p_err("cannot write %s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	/*
	 * A log someone else owns, or may write, is no record of ours: its
	 * owner can change it, or already holds it open to add lines porttrace
	 * never wrote. Refused, not repaired: a chmod would not take back a
	 * descriptor already open.
	 */
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		p_err("refusing to write %s: it is %s (mode %04o, owner uid %u); remove it, or chown and chmod go-w it",
		      path, st.st_uid != geteuid() ? "owned by another user" : "writable by group or others",
		      (unsigned int)(st.st_mode & 07777), (unsigned int)st.st_uid);
		close(fd);
		return -EPERM;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno;
		if (err == EWOULDBLOCK)
			p_err("%s is being written by another porttrace; refusing to share it", path);
		else
			p_err("cannot lock %s: %s", path, strerror(err));
		close(fd);
		return -err;
	}
	/* A writer killed mid-line left no newline: end that line, so that
	 * what we append starts on a line of its own. */
	if (st.st_size > 0) {
		char last = '\n';

		if (pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n' &&
		    write(fd, "\n", 1) != 1)
			p_warn("cannot end the unterminated last line of %s", path);
	}
	return fd;
}

struct logfile *logfile__open(const char *path)
{
	struct logfile *l = calloc(1, sizeof(*l));

	if (!l || !(l->path = strdup(path))) {
		p_err("out of memory");
		free(l);
		return NULL;
	}
	l->fd = open_locked(path);
	if (l->fd < 0) {
		free(l->path);
		free(l);
		return NULL;
	}
	return l;
}

static void zip_wait(struct logfile *l)
{
	if (!l->zipping)
		return;
	pthread_join(l->zipper, NULL);
	l->zipping = false;
	free(l->zip_src);
	free(l->zip_dst);
	l->zip_src = l->zip_dst = NULL;
}

void logfile__close(struct logfile *l)
{
	if (!l)
		return;
	zip_wait(l);
	if (l->fd >= 0) {
		fsync(l->fd);
		close(l->fd);
	}
	free(l->path);
	free(l);
}

int logfile__fd(const struct logfile *l)
{
	return l->fd;
}

const char *logfile__path(const struct logfile *l)
{
	return l->path;
}

bool logfile__is(const struct logfile *l, const char *path)
{
	struct stat now, ours;

	return !stat(path, &now) && !fstat(l->fd, &ours) && now.st_dev == ours.st_dev &&
	       now.st_ino == ours.st_ino;
}

int logfile__reopen(struct logfile *l)
{
	int fd;

	/* Not moved away (a stray HUP, or logrotate's copytruncate): the
	 * file we hold is still the one at path, lock and all. */
	if (logfile__is(l, l->path))
		return 1;
	fd = open_locked(l->path);
	if (fd < 0)
		return fd;
	close(l->fd);
	l->fd = fd;
	return 0;
}

long long logfile__size(const struct logfile *l)
{
	struct stat st;

	return fstat(l->fd, &st) ? -1 : st.st_size;
}

/* FILE.1 -> FILE.1.gz: written beside it and renamed when complete, so a
 * reader never sees half a piece under its final name. */
static void *zip_piece(void *arg)
{
	struct logfile *l = arg;
	char buf[64 * 1024], tmp[4096 + 8];
	int in = open(l->zip_src, O_RDONLY | O_CLOEXEC), fd = -1;
	gzFile gz = NULL;
	ssize_t n = 0;

	snprintf(tmp, sizeof(tmp), "%s.part", l->zip_dst);
	if (in >= 0)
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd >= 0)
		gz = gzdopen(fd, "wb1");	/* fast: logs compress well anyway */
	while (gz && (n = read(in, buf, sizeof(buf))) > 0)
		if (gzwrite(gz, buf, n) != n) {
			n = -1;
			break;
		}
	if (gz && gzclose(gz) != Z_OK)
		n = -1;
	else if (!gz && fd >= 0)
		close(fd);
	if (in >= 0)
		close(in);
	if (in < 0 || !gz || n < 0 || rename(tmp, l->zip_dst)) {
		/* zlib reads a plain file as it is: under the .gz name the
		 * piece stays in the rotation and in what readers read. */
		p_warn("compressing %s failed; it is kept uncompressed", l->zip_src);
		unlink(tmp);
		rename(l->zip_src, l->zip_dst);
		return NULL;
	}
	unlink(l->zip_src);
	return NULL;
}

/* Whether path still names the file we write: rm (to free a full disk) or
 * a logrotate without SIGHUP leaves us writing a file nobody can see. */
static bool still_at_path(const struct logfile *l)
{
	struct stat now, ours;

	if (fstat(l->fd, &ours))
		return true;	/* cannot tell: rotate as usual */
	return !stat(l->path, &now) && now.st_dev == ours.st_dev && now.st_ino == ours.st_ino;
}

int logfile__rotate(struct logfile *l, unsigned int keep)
{
	size_t len = strlen(l->path) + 32;
	char *from = NULL, *to = NULL;
	int fd, err = 0;

	/* One piece is compressed at a time. */
	zip_wait(l);
	/*
	 * The file we hold is no longer at path: renaming path would fail (or
	 * take someone else's file), and it is no piece of ours to rotate.
	 * Start path anew and leave the pieces alone: shifting them first,
	 * as a rotation does, would drop the oldest each second while the
	 * old file stays over the limit. What was written to the old file
	 * went with it.
	 */
	if (!still_at_path(l)) {
		fd = open_locked(l->path);
		if (fd < 0)
			return fd;	/* said; the current file stays in use */
		p_warn("%s was removed or moved away while being written; starting it anew, "
		       "rotated pieces untouched", l->path);
		close(l->fd);
		l->fd = fd;
		return 0;
	}
	from = malloc(len);
	to = malloc(len);
	if (!from || !to) {
		free(from);
		free(to);
		return -ENOMEM;
	}
	/*
	 * A piece left as FILE.1 (compressing it could not start, or no new
	 * file could be opened after the last rename) would be overwritten
	 * below: move it to FILE.1.gz uncompressed, as a failed compression
	 * does, so that it is shifted with the others.
	 */
	snprintf(from, len, "%s.1", l->path);
	snprintf(to, len, "%s.1.gz", l->path);
	if (!access(from, F_OK)) {
		if (!access(to, F_OK)) {
			err = -EEXIST;
			p_err("rotating %s: both %s and %s exist; rotating nothing", l->path, from, to);
			goto out;
		}
		if (rename(from, to)) {
			err = -errno;
			p_err("rotating %s: %s", from, strerror(errno));
			goto out;
		}
	}
	/*
	 * The live file first: until it is renamed, nothing has changed, and
	 * a failure here leaves every piece where it was.
	 */
	if (rename(l->path, from)) {
		err = -errno;
		p_err("rotating %s: %s", l->path, strerror(errno));
		goto out;
	}
	/* Only now make room for it: FILE.N.gz -> FILE.N+1.gz. */
	snprintf(to, len, "%s.%u.gz", l->path, keep);
	unlink(to);
	for (unsigned int i = keep; i > 1; i--) {
		snprintf(from, len, "%s.%u.gz", l->path, i - 1);
		snprintf(to, len, "%s.%u.gz", l->path, i);
		if (rename(from, to) && errno != ENOENT)
			p_warn("rotating %s: %s", from, strerror(errno));
	}
	snprintf(from, len, "%s.1", l->path);
	snprintf(to, len, "%s.1.gz", l->path);
	fd = open_locked(l->path);
	if (fd < 0) {
		/* Keep writing to the renamed file rather than lose events;
		 * the next rotation starts path anew. */
		err = fd;
		goto out;
	}
	close(l->fd);
	l->fd = fd;
	l->zip_src = from;
	l->zip_dst = to;
	from = to = NULL;
	if (pthread_create(&l->zipper, NULL, zip_piece, l) == 0) {
		l->zipping = true;
	} else {
		p_warn("cannot start compressing %s; it is kept uncompressed", l->zip_src);
		free(l->zip_src);
		free(l->zip_dst);
		l->zip_src = l->zip_dst = NULL;
	}
out:
	free(from);
	free(to);
	return err;
}
