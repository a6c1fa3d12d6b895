/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* clock: the one way porttrace reads a clock, in nanoseconds. Event times
 * are CLOCK_MONOTONIC, as bpf_ktime_get_ns() gives them. */
#ifndef PT_CLOCK_H
#define PT_CLOCK_H

#include <time.h>
#include <linux/types.h>

__u64 clock__ns(clockid_t clk);

#endif /* PT_CLOCK_H */
