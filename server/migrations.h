/*  migrations.h: the SQL migrations in server/sql, embedded at build time (embed_sql.cmake).  */
#ifndef ASY_MIGRATIONS_H_INCLUDED
#define ASY_MIGRATIONS_H_INCLUDED

typedef struct {
    int version;          /* NNN of NNN_name.sql */
    const char *name;     /* "001_init" */
    const char *sql;
} asy_migration_t;

extern const asy_migration_t asy_migrations[];
extern const int asy_migration_count;

#endif
