// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "check.h"
#include "fixtures.h"
#include "logreader.h"

static int parse(const char *line)
{
	struct logreader *r = logreader__new();
	struct pt_event ev;
	int ret = logreader__parse_line(r, line, strlen(line), &ev);

	logreader__free(r);
	return ret;
}

static void bad_lines_are_data(void)
{
	CHECK(parse("garbage") == -EINVAL);
	CHECK(parse("{\"type\":\"state\",\"t_ns\":1") == -EINVAL);
	CHECK(parse("{\"type\":\"state\",\"t_ns\":1,\"family\":4,\"old\":\"BOGUS\",\"new\":\"CLOSE\"}") ==
	      -EINVAL);
	CHECK(parse("{\"type\":\"martian\",\"t_ns\":1}") == -ENOMSG);
	CHECK(parse("{\"type\":\"header\",\"schema\":99}") == -EPROTO);
	CHECK(parse("{\"type\":\"trailer\",\"events\":{\"state\":3,\"bind\":1},\"kernel_lost\":0}") == 0);
	CHECK(parse("{\"type\":\"lost\",\"t_ns\":5,\"lost\":3,\"lost_total\":3}") == 1);
	CHECK(parse("{\"type\":\"port\",\"t_ns\":1,\"family\":4,\"event\":\"bind\",\"lport\":70000}") ==
	      -EINVAL);
	CHECK(parse("{\"type\":\"port\",\"t_ns\":1,\"family\":4,\"event\":\"bind\",\"laddr\":\"1.2.3\"}") ==
	      -EINVAL);
	CHECK(parse("{\"type\":\"port\",\"t_ns\":1,\"family\":4,\"event\":\"bind\",\"newfield\":[1,{\"a\":null}]}") ==
	      1);
}

static void write_gz(const char *path, const char *text)
{
	gzFile gz = gzopen(path, "wb");

	gzputs(gz, text);
	gzclose(gz);
}

static const char *line_at(unsigned long long t)
{
	static char buf[256];

	snprintf(buf, sizeof(buf),
		 "{\"type\":\"port\",\"t_ns\":%llu,\"event\":\"bind\",\"pid\":1,\"family\":4,"
		 "\"laddr\":\"127.0.0.1\",\"lport\":80,\"proto\":\"tcp\",\"flags\":1}\n", t);
	return buf;
}

static void rotated_pieces_in_order(void)
{
	char dir[] = "/tmp/pt-unit-XXXXXX", path[256], piece[300], text[1024];
	struct logreader *r = logreader__new();
	struct collect c = {};
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/log.jsonl", dir);
	snprintf(piece, sizeof(piece), "%s.2.gz", path);
	write_gz(piece, line_at(1));
	snprintf(piece, sizeof(piece), "%s.1.gz", path);
	snprintf(text, sizeof(text), "%sgarbage\n", line_at(2));
	write_gz(piece, text);
	f = fopen(path, "w");
	fputs(line_at(3), f);
	fputs("{\"type\":\"port\",\"t_ns\":4,\"ev", f);	/* killed mid-line */
	fclose(f);

	CHECK(logreader__read(r, path, collect_event, &c) == 0);
	CHECK(c.n == 3);
	CHECK(c.ev[0].ts_ns == 1 && c.ev[1].ts_ns == 2 && c.ev[2].ts_ns == 3);
	CHECK(logreader__warnings(r) == 2);
	CHECK(logreader__read(r, "/nonexistent/log", collect_event, &c) < 0);
	logreader__free(r);
	snprintf(text, sizeof(text), "rm -rf %s", dir);
	CHECK(system(text) == 0);
}

/* A port record whose unknown field "x" is depth arrays deep, closed or not. */
static char *nested_line(int depth, bool closed)
{
	char *line = malloc(2 * depth + 128), *p = line;

	p += sprintf(p, "{\"type\":\"port\",\"t_ns\":1,\"family\":4,\"event\":\"bind\",\"x\":");
	memset(p, '[', depth);
	p += depth;
	if (closed) {
		*p++ = '1';
		memset(p, ']', depth);
		p += depth;
		*p++ = '}';
	}
	*p = '\0';
	return line;
}

static void deep_nesting_is_malformed(void)
{
	char dir[] = "/tmp/pt-unit-XXXXXX", path[256], cmd[300];
	struct logreader *r = logreader__new();
	struct collect c = {};
	char *line;
	FILE *f;

	/* As deep as a newer writer could reasonably go: skipped, read. */
	line = nested_line(16, true);
	CHECK(parse(line) == 1);
	free(line);
	/* Deeper is garbage, not a value to follow level by level. */
	line = nested_line(17, true);
	CHECK(parse(line) == -EINVAL);
	free(line);
	/* 30000 levels in a 64 KiB line used to overflow the stack. */
	line = nested_line(30000, false);
	CHECK(parse(line) == -EINVAL);

	/* From a file: one warning, and the lines after it are still read. */
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/log.jsonl", dir);
	f = fopen(path, "w");
	fputs(line_at(1), f);
	fprintf(f, "%s\n", line);
	fputs(line_at(2), f);
	fclose(f);
	free(line);
	CHECK(logreader__read(r, path, collect_event, &c) == 0);
	CHECK(c.n == 2 && c.ev[0].ts_ns == 1 && c.ev[1].ts_ns == 2);
	CHECK(logreader__warnings(r) == 1);
	logreader__free(r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

/* Events the run could not write are only in its trailer: reading the log
 * says so, once per trailer that counts any, and reads on. */
static void trailer_write_lost_is_reported(void)
{
	char dir[] = "/tmp/pt-unit-XXXXXX", path[256], cmd[300];
	struct logreader *r = logreader__new();
	struct collect c = {};
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/log.jsonl", dir);
	f = fopen(path, "w");
	fputs(line_at(1), f);
	fputs("{\"type\":\"trailer\",\"t_ns\":2,\"events\":{\"bind\":1,\"lost\":0},"
	      "\"kernel_lost\":0,\"bad_records\":0,\"aged\":0,\"write_lost\":0}\n", f);
	fputs(line_at(3), f);
	fputs("{\"type\":\"trailer\",\"t_ns\":4,\"events\":{\"bind\":1,\"lost\":0},"
	      "\"kernel_lost\":0,\"bad_records\":0,\"aged\":0,\"write_lost\":7}\n", f);
	fputs(line_at(5), f);
	fclose(f);
	CHECK(logreader__read(r, path, collect_event, &c) == 0);
	CHECK(c.n == 3 && c.ev[2].ts_ns == 5);
	CHECK(logreader__warnings(r) == 1);
	logreader__free(r);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
}

TESTS(logreader_tests) = {
	{"logreader: garbage, truncated, unknown and newer lines are reported, not fatal",
	 bad_lines_are_data},
	{"logreader: rotated and compressed pieces read oldest first", rotated_pieces_in_order},
	{"logreader: nesting deeper than any writer's is a malformed line, not a crash",
	 deep_nesting_is_malformed},
	{"logreader: a trailer's write_lost is a warning, and reading goes on",
	 trailer_write_lost_is_reported},
	{},
};
