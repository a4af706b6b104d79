/*
 * live.c: the live input boundary (see live.h). It reads the host directly and logs
 * nothing; record/ wraps it to log every crossing. With virtual_clock the machine clock
 * is derived from the position instead of the host clock; input stays live.
 *
 * Threads: the vCPU thread calls the input ops; one watcher thread only waits (on the
 * input fd and the earliest timer deadline) and kicks the vCPU. They share atomics: the
 * published deadline, whether the UART can take input, the stop flag, and the time the
 * clock was held (a debugger's stops). live_wake may come from any thread.
 */
#include "live.h"

#include "machine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define CTRL_A 0x01

struct vmm_live {
	struct vmm_live_config cfg;
	struct vmm_machine *m;
	uint64_t epoch_off; /* realtime - monotonic at creation */
	uint64_t start;     /* monotonic at creation */
	uint64_t slow;      /* cfg.slowdown, at least 1 */
	bool in_eof;
	bool esc_pending;
	int wake_fd;        /* eventfd: the watcher re-reads the deadline */
	int idle_fd;        /* eventfd: an idle wait returns (live_wake) */
	int stop_pipe[2];   /* readable once a stop is requested */
	pthread_t thread;
	bool thread_on;
	atomic_bool quit;
	atomic_bool stop;
	atomic_uint_fast64_t deadline;
	atomic_bool want_input;
	atomic_bool input_kicked;
	uint64_t vskip; /* virtual clock: ns skipped while halted */
	/* Host time the guest did not see (vmm_live_hold), and when the current hold began. */
	atomic_uint_fast64_t held_ns;
	uint64_t hold_start;
	bool holding;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t vmm_live_host_ns(struct vmm_live *l)
{
	uint64_t ran = mono_ns() - l->start - atomic_load(&l->held_ns);
	return l->start + l->epoch_off + ran / l->slow;
}

/* Host milliseconds (rounded up, at most cap) until the machine clock reaches ns. */
static int host_ms_until(struct vmm_live *l, uint64_t ns, uint64_t now, uint64_t cap)
{
	if (ns <= now)
		return 0;
	uint64_t d = ns - now;
	uint64_t ms = d > UINT64_MAX / l->slow / 2 ? cap : (d * l->slow + 999999) / 1000000;
	return (int)(ms > cap ? cap : ms);
}

void vmm_live_hold(struct vmm_live *l, bool on)
{
	if (on == l->holding)
		return;
	l->holding = on;
	if (on) {
		l->hold_start = mono_ns();
		if (l->cfg.flush)
			l->cfg.flush(l->cfg.out_opaque); /* show what the guest printed so far */
		return;
	}
	/* The watcher may wake early for a deadline now further away: it looks again. */
	atomic_fetch_add(&l->held_ns, mono_ns() - l->hold_start);
}

/* The machine clock now: host time, or the virtual clock of the current position. */
static uint64_t now_ns(struct vmm_live *l, struct vmm_machine *m)
{
	if (l->cfg.virtual_clock)
		return VMM_VCLOCK_EPOCH + vmm_machine_pos(m) + l->vskip;
	return vmm_live_host_ns(l);
}

static uint64_t live_clock_read(void *opaque, struct vmm_machine *m)
{
	return now_ns(opaque, m);
}

/* The deadline the watcher thread waits for: none with a virtual clock. */
static uint64_t watched_deadline(struct vmm_live *l, struct vmm_machine *m)
{
	return l->cfg.virtual_clock ? UINT64_MAX : vmm_timer_next_deadline(m);
}

static void wake_watcher(struct vmm_live *l)
{
	uint64_t one = 1;
	ssize_t w = write(l->wake_fd, &one, sizeof(one));
	(void)w;
}

static void live_timers_changed(void *opaque, struct vmm_machine *m)
{
	struct vmm_live *l = opaque;
	if (l->cfg.virtual_clock) {
		/* The current run's budget was computed without this timer: end the run so
		 * that the next budget counts to its deadline. */
		vmm_machine_kick(m);
		return;
	}
	uint64_t d = watched_deadline(l, m);
	uint64_t old = atomic_exchange(&l->deadline, d);
	if (d < old)
		wake_watcher(l);
}

/* Publish the earliest deadline; wake the watcher if it moved earlier. */
static void publish(struct vmm_live *l, struct vmm_machine *m)
{
	uint64_t d = watched_deadline(l, m);
	uint64_t old = atomic_exchange(&l->deadline, d);
	bool want = l->cfg.in_fd >= 0 && !l->in_eof && vmm_serial_rx_room(m) > 0;
	bool was = atomic_exchange(&l->want_input, want);
	atomic_store(&l->input_kicked, false);
	if (d < old || (want && !was))
		wake_watcher(l);
}

/* Read what the UART can take; returns true if anything was delivered. */
static bool take_input(struct vmm_live *l, struct vmm_machine *m)
{
	if (l->cfg.in_fd < 0 || l->in_eof)
		return false;
	size_t room = vmm_serial_rx_room(m);
	if (!room)
		return false;
	uint8_t buf[64], out[64];
	if (room > sizeof(buf))
		room = sizeof(buf);
	ssize_t n = read(l->cfg.in_fd, buf, room);
	if (n == 0) {
		l->in_eof = true; /* end of input is just silence */
		return false;
	}
	if (n < 0)
		return false; /* EAGAIN, or an error we treat as silence */
	size_t k = 0;
	for (ssize_t i = 0; i < n; i++) {
		uint8_t b = buf[i];
		if (l->cfg.escape) {
			if (l->esc_pending) {
				l->esc_pending = false;
				if (b == 'x' || b == 'X') {
					vmm_live_request_stop(l);
					continue;
				}
				if (b != CTRL_A)
					continue; /* unknown escape: dropped */
			} else if (b == CTRL_A) {
				l->esc_pending = true;
				continue;
			}
		}
		out[k++] = b;
	}
	vmm_serial_rx(m, out, k);
	return k > 0;
}

/* Fire every due timer once; returns how many fired. */
static int fire_due(struct vmm_live *l, struct vmm_machine *m)
{
	uint64_t now = now_ns(l, m);
	int fired = 0;
	for (unsigned i = 0; i < vmm_timer_count(m); i++) {
		struct vmm_timer *t = vmm_timer_get(m, i);
		if (t->armed && t->deadline <= now) {
			vmm_timer_fire(m, i);
			fired++;
		}
	}
	return fired;
}

static int live_poll(void *opaque, struct vmm_machine *m)
{
	struct vmm_live *l = opaque;
	if (l->cfg.flush)
		l->cfg.flush(l->cfg.out_opaque);
	fire_due(l, m);
	take_input(l, m);
	publish(l, m);
	return atomic_load(&l->stop) ? VMM_INPUT_STOP : 0;
}

static int live_idle(void *opaque, struct vmm_machine *m)
{
	struct vmm_live *l = opaque;
	for (;;) {
		if (atomic_load(&l->stop))
			return VMM_INPUT_STOP;
		int fired = fire_due(l, m);
		bool got = take_input(l, m);
		if (fired || got) {
			publish(l, m);
			return 0;
		}
		if (l->cfg.flush)
			l->cfg.flush(l->cfg.out_opaque);
		uint64_t d = vmm_timer_next_deadline(m);
		uint64_t now = now_ns(l, m);
		if (l->cfg.virtual_clock && d != UINT64_MAX) {
			/* Nothing runs while halted: jump the clock to the deadline. */
			l->vskip += d - now;
			continue;
		}
		int timeout = -1;
		if (d != UINT64_MAX)
			timeout = host_ms_until(l, d, now, INT32_MAX);
		struct pollfd p[3] = {{.fd = l->stop_pipe[0], .events = POLLIN},
				      {.fd = l->idle_fd, .events = POLLIN},
				      {.fd = -1}};
		if (l->cfg.in_fd >= 0 && !l->in_eof && vmm_serial_rx_room(m) > 0)
			p[2] = (struct pollfd){.fd = l->cfg.in_fd, .events = POLLIN};
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			return vmm_fail(VMM_EIO, "waiting for guest input: %s", strerror(errno));
		if (p[1].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(l->idle_fd, &v, sizeof(v));
			(void)r;
			return 0; /* woken (live_wake): the run loop looks again */
		}
	}
}

static uint64_t live_run_budget(void *opaque, struct vmm_machine *m)
{
	struct vmm_live *l = opaque;
	if (!l->cfg.virtual_clock)
		return UINT64_MAX; /* the watcher thread kicks at deadlines */
	uint64_t d = vmm_timer_next_deadline(m);
	if (d == UINT64_MAX)
		return UINT64_MAX;
	uint64_t now = now_ns(l, m);
	return d > now ? d - now : 1; /* one ns per instruction; always make progress */
}

static void live_serial_tx(void *opaque, struct vmm_machine *m, uint8_t byte)
{
	struct vmm_live *l = opaque;
	(void)m;
	if (l->cfg.out)
		l->cfg.out(l->cfg.out_opaque, byte);
}

static void live_wake(void *opaque)
{
	struct vmm_live *l = opaque;
	uint64_t one = 1;
	ssize_t w = write(l->idle_fd, &one, sizeof(one));
	(void)w;
}

const struct vmm_input_ops vmm_live_input_ops = {
	.clock_read = live_clock_read,
	.poll = live_poll,
	.idle = live_idle,
	.run_budget = live_run_budget,
	.timers_changed = live_timers_changed,
	.serial_tx = live_serial_tx,
	.wake = live_wake,
};

static void *watcher(void *arg)
{
	struct vmm_live *l = arg;
	while (!atomic_load(&l->quit)) {
		uint64_t d = atomic_load(&l->deadline);
		uint64_t now = vmm_live_host_ns(l);
		if (d != UINT64_MAX && d <= now) {
			/* Due: kick, then wait for the vCPU thread to publish a new deadline
			 * (unless it already has: then d is stale and stays replaced). */
			atomic_compare_exchange_strong(&l->deadline, &d, UINT64_MAX);
			vmm_machine_kick(l->m);
			continue;
		}
		int timeout = -1;
		if (d != UINT64_MAX)
			timeout = host_ms_until(l, d, now, 1000);
		struct pollfd p[3] = {{.fd = l->wake_fd, .events = POLLIN},
				      {.fd = l->stop_pipe[0], .events = POLLIN},
				      {.fd = -1}};
		bool watch_in = atomic_load(&l->want_input) && !atomic_load(&l->input_kicked);
		if (watch_in)
			p[2] = (struct pollfd){.fd = l->cfg.in_fd, .events = POLLIN};
		int n = poll(p, 3, timeout);
		if (n <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			uint64_t v;
			ssize_t r = read(l->wake_fd, &v, sizeof(v));
			(void)r;
		}
		if (p[1].revents & POLLIN) {
			vmm_machine_kick(l->m);
			/* Stay quiet until told to quit. */
			while (!atomic_load(&l->quit)) {
				struct pollfd q = {.fd = l->wake_fd, .events = POLLIN};
				if (poll(&q, 1, 100) > 0) {
					uint64_t v;
					ssize_t r = read(l->wake_fd, &v, sizeof(v));
					(void)r;
				}
			}
			break;
		}
		if (watch_in && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			atomic_store(&l->input_kicked, true);
			vmm_machine_kick(l->m);
		}
	}
	return NULL;
}

int vmm_live_create(const struct vmm_live_config *cfg, struct vmm_live **out)
{
	struct vmm_live *l = calloc(1, sizeof(*l));
	if (!l)
		return -VMM_ENOMEM;
	l->cfg = *cfg;
	l->stop_pipe[0] = l->stop_pipe[1] = -1;
	l->wake_fd = l->idle_fd = -1;
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	uint64_t real = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	l->start = mono_ns();
	l->epoch_off = real - l->start;
	l->slow = cfg->slowdown > 1 ? cfg->slowdown : 1;
	if (cfg->clock_floor_ns >= real) /* this host is behind: start just past the floor */
		l->epoch_off += cfg->clock_floor_ns - real + 1;
	atomic_store(&l->deadline, UINT64_MAX);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->idle_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0 || l->idle_fd < 0 || pipe2(l->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;
		vmm_live_destroy(l);
		return vmm_fail(VMM_EIO, "live input: %s", strerror(e));
	}
	if (cfg->in_fd >= 0) {
		int fl = fcntl(cfg->in_fd, F_GETFL);
		if (fl >= 0)
			fcntl(cfg->in_fd, F_SETFL, fl | O_NONBLOCK);
	}
	*out = l;
	return 0;
}

int vmm_live_start(struct vmm_live *l, struct vmm_machine *m)
{
	l->m = m;
	int e = pthread_create(&l->thread, NULL, watcher, l);
	if (e)
		return vmm_fail(VMM_EIO, "starting the timer thread: %s", strerror(e));
	l->thread_on = true;
	return 0;
}

void vmm_live_request_stop(struct vmm_live *l)
{
	if (!atomic_exchange(&l->stop, true)) {
		char c = 1;
		ssize_t w = write(l->stop_pipe[1], &c, 1);
		(void)w;
	}
	if (l->m)
		vmm_machine_kick(l->m);
}

bool vmm_live_stopping(struct vmm_live *l)
{
	return atomic_load(&l->stop);
}

void vmm_live_destroy(struct vmm_live *l)
{
	if (!l)
		return;
	if (l->thread_on) {
		atomic_store(&l->quit, true);
		uint64_t one = 1;
		ssize_t w = write(l->wake_fd, &one, sizeof(one));
		(void)w;
		pthread_join(l->thread, NULL);
	}
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->idle_fd >= 0)
		close(l->idle_fd);
	if (l->stop_pipe[0] >= 0)
		close(l->stop_pipe[0]);
	if (l->stop_pipe[1] >= 0)
		close(l->stop_pipe[1]);
	if (l->cfg.in_fd >= 0) {
		int fl = fcntl(l->cfg.in_fd, F_GETFL);
		if (fl >= 0)
			fcntl(l->cfg.in_fd, F_SETFL, fl & ~O_NONBLOCK);
	}
	free(l);
}
