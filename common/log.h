/*  log.h: one line per happening, to stderr: "2026-11-23T07:30:00.123Z advsyncd INFO text".  */
#ifndef ASY_LOG_H_INCLUDED
#define ASY_LOG_H_INCLUDED

typedef enum { ASY_LOG_DEBUG = 0, ASY_LOG_INFO, ASY_LOG_WARN, ASY_LOG_ERROR } asy_log_level_t;

/* Sets the program name shown on each line (borrowed: must outlive logging). */
void asy_log_set_name(const char *name);
/* Lines below level are dropped. Default ASY_LOG_INFO; ADVSYNC_LOG=debug|info|warn|error sets it. */
void asy_log_set_level(asy_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns -1 if unknown. */
int asy_log_parse_level(const char *text);

void asy_log(asy_log_level_t level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define asy_debug(...) asy_log(ASY_LOG_DEBUG, __VA_ARGS__)
#define asy_info(...) asy_log(ASY_LOG_INFO, __VA_ARGS__)
#define asy_warn(...) asy_log(ASY_LOG_WARN, __VA_ARGS__)
#define asy_error(...) asy_log(ASY_LOG_ERROR, __VA_ARGS__)

#endif
