// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * A raw recording of the kernel's records (tests/data/capture.raw, made by
 * porttrace --record-raw of tests/data/capture.py in a namespace with a
 * 4-port range: connections closed first, reset and held, a connect() that
 * found no port, a UDP autobind, a bind() that failed) replayed through the
 * pipeline must give exactly tests/data/capture.jsonl: a decoder change that
 * alters any event fails here. When a change is meant to, regenerate it:
 *   build/ptreplay -o tests/data/capture.raw > tests/data/capture.jsonl
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "check.h"
#include "output.h"
#include "pipeline.h"
#include "rawfile.h"

#define CAPTURE "tests/data/capture.raw"
#define GOLDEN "tests/data/capture.jsonl"

static char *slurp_fd(int fd, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	*len = 0;
	lseek(fd, 0, SEEK_SET);
	do {
		if (*len + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap + 1);
		}
		n = read(fd, buf + *len, cap - *len);
		if (n > 0)
			*len += n;
	} while (n > 0);
	buf[*len] = '\0';
	return buf;
}

static void capture_replays_to_golden(void)
{
	int fd = memfd_create("replay", 0), golden_fd = -1;
	struct output *out = output__new(fd, "replay", OUTPUT_JSON, 0);
	struct pipeline *pipe = pipeline__new(&(struct pipeline_opts){.out = out});
	char *recs = NULL, *got = NULL, *want = NULL;
	size_t len, off = 0, got_len = 0, want_len = 0;
	const void *rec;
	__u32 n;
	int records = 0;

	CHECK(rawfile__load(CAPTURE, &recs, &len) == 0);
	while (recs && rawfile__next(recs, len, &off, &rec, &n)) {
		CHECK(pipeline__record(pipe, rec, n) == 0);
		records++;
	}
	CHECK(records > 40 && off == len);
	pipeline__tick(pipe, UINT64_MAX);
	pipeline__end(pipe, 0);
	output__flush(out);
	got = slurp_fd(fd, &got_len);
	golden_fd = open(GOLDEN, O_RDONLY);
	CHECK(golden_fd >= 0);
	if (golden_fd >= 0)
		want = slurp_fd(golden_fd, &want_len);
	if (want && strcmp(got, want)) {
		const char *g = got, *w = want;
		int line = 1;

		/* Say where, not just that. */
		while (*g && *g == *w) {
			line += *g == '\n';
			g++;
			w++;
		}
		fprintf(stderr, "  replay differs from %s at line %d\n", GOLDEN, line);
		CHECK_STR(got, want);
	}
	free(got);
	free(want);
	free(recs);
	pipeline__free(pipe);
	output__free(out);
	close(fd);
	if (golden_fd >= 0)
		close(golden_fd);
}

/* A file that is not a raw recording, or of another version, is refused. */
static void raw_magic_and_version_checked(void)
{
	char path[] = "/tmp/pt-unit-raw-XXXXXX";
	struct rawfile_hdr h = {.magic = PT_RAW_MAGIC, .version = PT_RAW_VERSION + 1,
				.size = sizeof(h)};
	char *recs = NULL;
	size_t len;
	int fd = mkstemp(path);

	CHECK(fd >= 0 && write(fd, "{\"type\":\"header\"}\n", 18) == 18);
	CHECK(rawfile__load(path, &recs, &len) == -EINVAL && !recs);
	CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, &h, sizeof(h), 0) == sizeof(h));
	CHECK(rawfile__load(path, &recs, &len) == -EINVAL && !recs);
	/* An empty file becomes a recording; one of ours is appended to. */
	CHECK(ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 && rawfile__begin(fd, path) == 0);
	CHECK(rawfile__begin(fd, path) == 0);
	CHECK(rawfile__load(path, &recs, &len) == 0 && len == 0);
	free(recs);
	close(fd);
	unlink(path);
}

TESTS(replay_tests) = {
	{"replay: a recorded capture gives the golden events", capture_replays_to_golden},
	{"replay: raw recordings are checked for magic and version", raw_magic_and_version_checked},
	{},
};
