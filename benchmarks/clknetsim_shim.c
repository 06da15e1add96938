/* Preloaded before clknetsim.so for the Python clients of benchmarks/clknetsim_truth.py (ours, not
 * clknetsim's): CPython asks for sockets with SOCK_CLOEXEC in the type, which clknetsim's socket()
 * refuses (EINVAL); it marks descriptors close-on-exec with ioctl(FIOCLEX) and sockets non-blocking
 * with ioctl(FIONBIO), which clknetsim's ioctl() refuses. None of it means anything here: simulated
 * sockets are never inherited and always non-blocking, and the clients start no programs (so a real
 * descriptor left inheritable goes nowhere). check_ntp_time connects its UDP socket and then calls
 * write() and read() on it, which clknetsim leaves to the kernel (where no such descriptor exists):
 * on a simulated socket they are send() and recv(). And a program a client starts (sntp's ctypes
 * runs gcc to find its library) runs outside the simulation: execve() drops LD_PRELOAD and
 * CLKNETSIM_* (preloaded, it would join the simulation as its parent's node).
 *
 * Until a program has run 0.1 simulated seconds, clknetsim advances its clock by a growing number
 * of 101 ns steps at every reading (a hack for chronyd's and ntpd's clock-precision loops at start):
 * a one-shot client that sends its request at once would stamp it up to hundreds of microseconds
 * late. With CHRONYCTL6_SETTLE set, the first reading of the clock first sleeps 0.15 simulated
 * seconds, so every client measures on a clock that reads true. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define SIMULATED_FD_BASE 100 /* clknetsim's sockets and timers are numbered from here, */
#define SIMULATED_TIMER_FD_BASE 200 /* its timers from here */
#define IS_SIMULATED_SOCKET(fd) ((fd) >= SIMULATED_FD_BASE && (fd) < SIMULATED_TIMER_FD_BASE)

static void settle(void) {
	static int settled;

	if (settled || !getenv("CHRONYCTL6_SETTLE"))
		return;
	settled = 1;
	usleep(150000); /* clknetsim's: a simulated sleep */
}

int clock_gettime(clockid_t id, struct timespec *tp) {
	static int (*next)(clockid_t, struct timespec *);

	if (!next)
		next = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	next(id, tp); /* connects to the simulation first */
	settle();
	return next(id, tp);
}

int gettimeofday(struct timeval *tv, void *tz) {
	static int (*next)(struct timeval *, void *);
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts); /* settles */
	if (!next)
		next = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
	return next(tv, tz);
}

int socket(int domain, int type, int protocol) {
	static int (*next)(int, int, int);
	if (!next)
		next = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	return next(domain, type & ~(SOCK_CLOEXEC | SOCK_NONBLOCK), protocol);
}

int ioctl(int fd, unsigned long request, ...) {
	static int (*next)(int, unsigned long, ...);
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (request == FIOCLEX || request == FIONCLEX || (request == FIONBIO && fd >= SIMULATED_FD_BASE))
		return 0;
	if (!next)
		next = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
	return next(fd, request, arg);
}

ssize_t write(int fd, const void *buf, size_t count) {
	static ssize_t (*next)(int, const void *, size_t);

	if (IS_SIMULATED_SOCKET(fd))
		return send(fd, buf, count, 0);
	if (!next)
		next = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	return next(fd, buf, count);
}

ssize_t read(int fd, void *buf, size_t count) {
	static ssize_t (*next)(int, void *, size_t);

	if (IS_SIMULATED_SOCKET(fd))
		return recv(fd, buf, count, 0);
	if (!next)
		next = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
	return next(fd, buf, count);
}

/* envp without the variables that make a program a simulated node */
static void outside(char *const envp[], char **kept, size_t room) {
	size_t i, n = 0;

	for (i = 0; envp && envp[i] && n < room - 1; i++)
		if (strncmp(envp[i], "LD_PRELOAD=", 11) && strncmp(envp[i], "CLKNETSIM_", 10))
			kept[n++] = envp[i];
	kept[n] = NULL;
}

extern char **environ;

int execve(const char *path, char *const argv[], char *const envp[]) {
	static int (*next)(const char *, char *const[], char *const[]);
	char *kept[1024];

	outside(envp, kept, sizeof kept / sizeof kept[0]);
	if (!next)
		next = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execve");
	return next(path, argv, kept);
}

int execv(const char *path, char *const argv[]) {
	return execve(path, argv, environ);
}

int execvp(const char *file, char *const argv[]) {
	static int (*next)(const char *, char *const[], char *const[]);
	char *kept[1024];

	outside(environ, kept, sizeof kept / sizeof kept[0]);
	if (!next)
		next = (int (*)(const char *, char *const[], char *const[]))dlsym(RTLD_NEXT, "execvpe");
	return next(file, argv, kept);
}
