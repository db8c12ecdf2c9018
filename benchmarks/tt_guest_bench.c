/* Guest-side timer for benchmarks/tt.py, built static so it runs in every root.
 *   tt_guest_bench time NAME CMD ARGS...   run CMD once, print "RESULT NAME SECONDS"
 *   tt_guest_bench loop NAME stat|getuid   print "RESULT NAME MICROSECONDS-PER-CALL",
 *                                          the slope between 10k and 60k calls */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double loop(const char *kind, long count) {
    struct stat st;
    double start = now();
    for (long i = 0; i < count; i++) {
        if (kind[0] == 's') stat("/etc/hostname", &st);
        else getuid();
    }
    return now() - start;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "time") == 0) {
        double start = now();
        pid_t pid = fork();
        if (pid == 0) {
            execvp(argv[3], argv + 3);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        fprintf(stderr, "RESULT %s %.6f\n", argv[2], now() - start);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (argc == 4 && strcmp(argv[1], "loop") == 0) {
        double small = loop(argv[3], 10000), large = loop(argv[3], 60000);
        fprintf(stderr, "RESULT %s %.3f\n", argv[2], (large - small) / 50000 * 1e6);
        return 0;
    }
    fprintf(stderr, "usage: %s time NAME CMD... | loop NAME stat|getuid\n", argv[0]);
    return 2;
}
