// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"
#include "logfile.h"

struct logfile {
	char *path;
	int fd;
};

static int open_locked(const char *path)
{
	struct stat st;
	int fd, err;

	/* O_NOFOLLOW: a symlink planted at the log's path must not redirect
	 * a root process's writes. */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
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
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno;
		if (err == EWOULDBLOCK)
			p_err("%s is being written by another porttrace; refusing to share it", path);
		else
			p_err("cannot lock %s: %s", path, strerror(err));
		close(fd);
		return -err;
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

void logfile__close(struct logfile *l)
{
	if (!l)
		return;
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

int logfile__reopen(struct logfile *l)
{
	int fd = open_locked(l->path);

	if (fd < 0)
		return fd;
	close(l->fd);
	l->fd = fd;
	return 0;
}
