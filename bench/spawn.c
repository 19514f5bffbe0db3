/* The harness's launcher: time one command and report its resource usage.
 *
 * Why a C program: a child forked (or vforked) by the Python harness carries the harness's
 * memory until it execs, and the kernel counts that in the child's peak RSS (ru_maxrss keeps
 * the high-water mark of the memory it had before exec). Started from this small program, a
 * command's peak is its own, as GNU time would show it; and the clock runs here, around
 * fork and wait only, not around the interpreter's own work.
 *
 * usage: spawn NAMESPACES|- STDERR_FILE COMMAND [ARG...]
 *   NAMESPACES  /proc/PID/ns/... files to join first, separated by commas (crun's and podman's
 *               private mount namespaces, see oci.py and engines.py; the bridge rows' private
 *               network namespaces, see netns.py), or - for none. All are opened before any is
 *               joined: a path must not be resolved inside a mount namespace just joined.
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

/* Open every namespace file in the comma-separated list, then join each (any kind: setns
 * with 0 takes the kind of the file). 0, or -1 after saying why on `err`. */
static int join_all(char *list, int err) {
    int fds[8], n = 0;
    for (char *path = strtok(list, ","); path; path = strtok(NULL, ",")) {
        if (n == 8 || (fds[n] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
            dprintf(err, "spawn: cannot open namespace %s\n", path);
            return -1;
        }
        n++;
    }
    for (int i = 0; i < n; i++) {
        if (setns(fds[i], 0) != 0) {
            dprintf(err, "spawn: cannot join namespace %d of %s\n", i + 1, list);
            return -1;
        }
        close(fds[i]);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: spawn NAMESPACES|- STDERR_FILE COMMAND [ARG...]\n");
        return 125;
    }
    int null = open("/dev/null", O_RDWR);
    int err = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (null < 0 || err < 0) {
        perror("spawn: open");
        return 125;
    }
    if (strcmp(argv[1], "-") != 0 && join_all(argv[1], err) != 0)
        return 125;
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
