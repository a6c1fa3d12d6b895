/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * rawfile: a recording of the kernel's raw records (porttrace --record-raw),
 * for bug reports, replays (tools/ptreplay) and tests without a kernel.
 *
 * Layout: a 16-byte header, then each record as a native-endian __u32
 * length and the record itself, as the ring buffer delivered it:
 *   magic "PTRAWREC" (8 bytes) | __u32 version | __u32 header size
 * version is PT_RAW_VERSION, raised whenever bpf/porttrace.h changes a
 * record's layout; a reader refuses another magic or version.
 */
#ifndef PT_RAWFILE_H
#define PT_RAWFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#define PT_RAW_MAGIC "PTRAWREC"
#define PT_RAW_VERSION 2	/* 2: pt_owner carries the thread name */

struct rawfile_hdr {
	char magic[8];
	__u32 version;
	__u32 size;	/* of this header: what a reader skips */
};

/*
 * Make fd (opened for appending, named path in messages) a raw recording:
 * an empty file gets the header; a file with one of this version is
 * appended to; anything else is refused, said in one line. 0 or -errno.
 */
int rawfile__begin(int fd, const char *path);

/*
 * Read the recording at path into memory: *recs and *len are the records
 * after the header (free(*recs)). Says why in one line (a missing file,
 * another magic or version) and returns -errno when it cannot.
 */
int rawfile__load(const char *path, char **recs, size_t *len);

/* The next record at *off of recs (len bytes): false at the end, or at a
 * length that runs past it (a recording cut short). */
bool rawfile__next(const char *recs, size_t len, size_t *off, const void **rec, __u32 *rec_len);

#endif /* PT_RAWFILE_H */
