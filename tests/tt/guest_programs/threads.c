/* Threads, signals between threads, fork from a thread: prints a fixed transcript. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static int counter;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg) {
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    if (arg) {
        pid_t child = fork();
        if (child == 0) _exit(7);
        int status;
        waitpid(child, &status, 0);
        printf("thread-fork-exit %d\n", WEXITSTATUS(status));
    }
    return 0;
}

int main(void) {
    pthread_t threads[4];
    for (long i = 0; i < 4; i++) pthread_create(&threads[i], 0, work, (void *)(i == 0));
    for (int i = 0; i < 4; i++) pthread_join(threads[i], 0);
    printf("counter %d\n", counter);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, 0);
    kill(getpid(), SIGUSR1);
    int received;
    sigwait(&set, &received);
    printf("signal %d\n", received);
    return 0;
}
