/* The harness's launcher: time one command and report its resource usage.
 *
 * Why a C program: a child forked (or vforked) by the Python harness carries the harness's
 * memory until it execs, and the kernel counts that in the child's peak RSS (ru_maxrss keeps
 * the high-water mark of the memory it had before exec). Started from this small program, a
 * command's peak is its own, as GNU time would show it; and the clock runs here, around
 * fork and wait only, not around the interpreter's own work.
 *
 * usage: spawn MOUNT_NS|- STDERR_FILE COMMAND [ARG...]
 *   MOUNT_NS  a /proc/PID/ns/mnt to join first (crun's and podman's private mount namespaces,
 *             see oci.py and engines.py), or - for none
 * The command's stdin and stdout are /dev/null, its stderr goes to STDERR_FILE. One line on
 * fd 3: "WALL_NS UTIME_US STIME_US MAXRSS_KIB EXIT_CODE" (exit code 128+N for signal N).
 * spawn itself exits 0 once it has reported, 125 when it could not run the command at all.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawn MOUNT_NS|- STDERR_FILE COMMAND [ARG...]\n");
        return 125;
    }
    if (strcmp(argv[1], "-") != 0) {
        int ns = open(argv[1], O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNS) != 0) {
            perror("spawn: setns");
            return 125;
        }
        close(ns);
    }
    int null = open("/dev/null", O_RDWR);
    int err = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (null < 0 || err < 0) {
        perror("spawn: open");
        return 125;
    }
    long long start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("spawn: fork");
        return 125;
    }
    if (pid == 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(err, 2);
        close(3);
        execvp(argv[3], argv + 3);
        dprintf(2, "spawn: cannot run %s\n", argv[3]);
        _exit(127);
    }
    int status;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) {
        perror("spawn: wait4");
        return 125;
    }
    long long wall = now_ns() - start;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    dprintf(3, "%lld %ld %ld %ld %d\n", wall,
            (long)(usage.ru_utime.tv_sec * 1000000L + usage.ru_utime.tv_usec),
            (long)(usage.ru_stime.tv_sec * 1000000L + usage.ru_stime.tv_usec),
            (long)usage.ru_maxrss, code);
    return 0;
}
