// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"
#include "rawfile.h"

_Static_assert(sizeof(struct rawfile_hdr) == 16, "the raw header is 16 bytes on disk");

/* 0 when the header is ours, -EINVAL (said) otherwise. */
static int check_hdr(const struct rawfile_hdr *h, size_t got, const char *path)
{
	if (got < sizeof(*h) || memcmp(h->magic, PT_RAW_MAGIC, sizeof(h->magic))) {
		p_err("%s: not a porttrace raw recording (no PTRAWREC magic)", path);
		return -EINVAL;
	}
	if (h->version != PT_RAW_VERSION || h->size < sizeof(*h)) {
		p_err("%s: raw recording version %u, this porttrace reads version %u", path,
		      h->version, PT_RAW_VERSION);
		return -EINVAL;
	}
	return 0;
}

int rawfile__begin(int fd, const char *path)
{
	struct rawfile_hdr h = {.version = PT_RAW_VERSION, .size = sizeof(h)};
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st)) {
		p_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (st.st_size) {
		n = pread(fd, &h, sizeof(h), 0);
		return check_hdr(&h, n < 0 ? 0 : n, path);
	}
	memcpy(h.magic, PT_RAW_MAGIC, sizeof(h.magic));
	if (write(fd, &h, sizeof(h)) != sizeof(h)) {
		p_err("%s: writing the raw recording's header: %s", path,
		      errno ? strerror(errno) : "short write");
		return -EIO;
	}
	return 0;
}

int rawfile__load(const char *path, char **recs, size_t *len)
{
	struct rawfile_hdr h;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		err = -errno;
		p_err("%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		p_err("%s: not a regular file", path);
		goto out;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf) {
		err = -ENOMEM;
		p_err("%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	memcpy(&h, buf, got < sizeof(h) ? got : sizeof(h));
	err = check_hdr(&h, got, path);
	if (err)
		goto out;
	if (h.size > got)
		h.size = got;
	memmove(buf, buf + h.size, got - h.size);
	*recs = buf;
	*len = got - h.size;
	buf = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return err;
}

bool rawfile__next(const char *recs, size_t len, size_t *off, const void **rec, __u32 *rec_len)
{
	__u32 n;

	if (*off + sizeof(n) > len)
		return false;
	memcpy(&n, recs + *off, sizeof(n));
	if (n > len - *off - sizeof(n))
		return false;
	*rec = recs + *off + sizeof(n);
	*rec_len = n;
	*off += sizeof(n) + n;
	return true;
}
