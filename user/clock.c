// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
#include "clock.h"

__u64 clock__ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}
