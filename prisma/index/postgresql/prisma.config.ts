import path from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
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
    return new PrismaPg({
      connectionString: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    });
  },
});
