import path from 'node:path';
import { PrismaLibSQL } from '@prisma/adapter-libsql';
import { defineConfig } from 'prisma/config';

// For `prisma generate` and `prisma migrate diff` (engine 'js': the CLI downloads no native
// engine). The index DB applies its migrations itself at open (jobs/index-db/open.ts, with
// jobs/index-db/migrate-postgres.ts on PostgreSQL).
export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: path.join(import.meta.dirname, 'schema.prisma'),
  migrations: { path: path.join(import.meta.dirname, 'migrations') },
  async adapter() {
    return new PrismaLibSQL({ url: process.env.INDEX_DB_URL ?? 'file:/tmp/cairn-index-cli.db' });
  },
});
