package governance

import (
	"fmt"
	"slices"
	"testing"
)

// ruleCase is one snippet for one rule: a true case lists where the rule must fire, as
// "line:col detector", exactly; a trap (want nil) must produce no finding of any rule.
// Traps include the false alarms of the naive governance script of the seeds.
type ruleCase struct {
	name    string
	rule    string
	file    string
	content string
	want    []string
}

var cases = []ruleCase{
	// GOV-001: secrets.
	{"stripe live key in client code", ruleSecrets, "src/app/checkout/pay.ts",
		"import Stripe from 'stripe'\nconst stripe = new Stripe(\"@@STRIPE_LIVE@@\")\n",
		[]string{"2:28 stripe-secret-key"}},
	{"stripe restricted key in python settings", ruleSecrets, "billing/settings.py",
		"STRIPE = {\n    'restricted': '@@STRIPE_RESTRICTED@@',\n}\n",
		[]string{"2:20 stripe-secret-key"}},
	{"aws access key id in an env file", ruleSecrets, ".env.production",
		"AWS_REGION=eu-west-1\nAWS_ACCESS_KEY_ID=@@AWS_ID@@\n",
		[]string{"2:19 aws-access-key-id"}},
	{"aws secret key in a yaml config", ruleSecrets, "deploy/config.yml",
		"aws:\n  aws_secret_access_key: @@AWS_SECRET@@\n",
		[]string{"2:26 aws-secret-access-key"}},
	{"github classic token in a shell script", ruleSecrets, "scripts/release.sh",
		"#!/bin/sh\nexport GITHUB_TOKEN=@@GH_PAT@@\ngh release create \"$1\"\n",
		[]string{"2:21 github-token"}},
	{"github fine-grained token in json", ruleSecrets, "config/ci.json",
		"{\n  \"github\": {\"pat\": \"@@GH_FINE@@\"}\n}\n",
		[]string{"2:22 github-fine-grained-token"}},
	{"slack bot token in go", ruleSecrets, "internal/notify/slack.go",
		"package notify\n\nconst botToken = \"@@SLACK_BOT@@\"\n",
		[]string{"3:19 slack-token"}},
	{"slack webhook in python", ruleSecrets, "ops/alert.py",
		"import requests\nWEBHOOK = \"@@SLACK_HOOK@@\"\n",
		[]string{"2:12 slack-webhook-url"}},
	{"private key file", ruleSecrets, "certs/server.key",
		"-----BEGIN RSA PRIVATE KEY-----\n@@PEM_BODY@@\n-----END RSA PRIVATE KEY-----\n",
		[]string{"1:1 private-key"}},
	{"private key pasted in json", ruleSecrets, "gcp/service-account.json",
		"{\n  \"type\": \"service_account\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n@@PEM_JSON@@\\n-----END PRIVATE KEY-----\\n\"\n}\n",
		[]string{"3:48 private-key"}},
	{"jwt in a test helper", ruleSecrets, "src/lib/auth.ts",
		"export const session = {\n  accessToken: '@@JWT_USER@@',\n}\n",
		[]string{"2:17 jwt"}},
	{"supabase service_role jwt in an env file", ruleSecrets, ".env.local",
		"NEXT_PUBLIC_SUPABASE_URL=https://abcdefghijklmnop.supabase.co\nSUPABASE_SERVICE_ROLE_KEY=@@JWT_SERVICE@@\n",
		[]string{"2:27 jwt"}},
	{"password in a database url", ruleSecrets, "docker-compose.prod.yml",
		"services:\n  api:\n    environment:\n      DATABASE_URL: postgres://app:@@DB_PASS@@@db.prod.internal:5432/app\n",
		[]string{"4:36 url-password"}},
	{"generic password assignment in python", ruleSecrets, "app/db.py",
		"import psycopg\n\nDB_PASSWORD = \"@@GENERIC@@\"\n",
		[]string{"3:16 generic-secret"}},
	{"generic api key in json", ruleSecrets, "config/services.json",
		"{\n  \"maps\": {\n    \"api_key\": \"@@GENERIC2@@\"\n  }\n}\n",
		[]string{"3:17 generic-secret"}},
	{"generic secret unquoted in an env file", ruleSecrets, "api/.env",
		"PORT=8080\nJWT_SECRET=@@GENERIC3@@\n",
		[]string{"2:12 generic-secret"}},
	{"kubernetes secret with base64 values", ruleSecrets, "k8s/db-secret.yaml",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  username: YXBw\n  password: @@K8S_PASS@@\n  stripe: @@K8S_STRIPE@@\n",
		[]string{"8:13 generic-secret", "9:11 stripe-secret-key"}},
	{"live key pasted in a docs page", ruleSecrets, "docs/payments.md",
		"# Payments\n\nFor the demo we used `@@STRIPE_LIVE@@` (rotated since).\n",
		[]string{"3:23 stripe-secret-key"}},

	{"seed false alarm: sk_test_ placeholder in a docs page", ruleSecrets, "docs/setup.md",
		"# Setup\n\nSet `STRIPE_SECRET_KEY` to your test key (`sk_test_...`) from the dashboard.\n", nil},
	{"stripe test-mode key in docs", ruleSecrets, "docs/testing.md",
		"Use the test key @@STRIPE_TEST@@ with card 4242 4242 4242 4242.\n", nil},
	{"seed false alarm: the test that asserts no keys leak", ruleSecrets, "src/app/proposal.test.ts",
		"const fullText = JSON.stringify(result);\nexpect(fullText).not.toMatch(/sk[-_]live|sk[-_]test|AKIA[A-Z0-9]/);\n", nil},
	{"seed false alarm: empty password state in a form", ruleSecrets, "src/app/login/page.tsx",
		"const [password, setPassword] = useState('');\nreturn <input type=\"password\" placeholder=\"Your password\" value={password} />\n", nil},
	{"seed false alarm: password schema", ruleSecrets, "src/app/signup/schema.ts",
		"export const schema = z.object({\n  password: z.string().min(12),\n  passwordConfirm: z.string(),\n})\n", nil},
	{"aws placeholder key id", ruleSecrets, "docs/aws.md",
		"aws configure set aws_access_key_id AKIAXXXXXXXXXXXXXXXX\n", nil},
	{"aws documentation example keys", ruleSecrets, "terraform/README.md",
		"```\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n```\n", nil},
	{"angle-bracket placeholder", ruleSecrets, "src/config.py",
		"API_KEY = \"<your-api-key>\"\nSECRET_KEY = \"${SECRET_KEY}\"\n", nil},
	{"changeme default", ruleSecrets, "helm/values.yaml",
		"postgres:\n  password: changeme\n  adminPassword: \"change-me-please\"\n", nil},
	{"values read from the environment", ruleSecrets, "src/server/env.ts",
		"const key = process.env.STRIPE_SECRET_KEY\nconst password = process.env.DB_PASSWORD ?? ''\n", nil},
	{"environment reads in python and go", ruleSecrets, "svc/main.py",
		"password = os.environ[\"DB_PASSWORD\"]\ntoken = os.getenv(\"GITHUB_TOKEN\", \"\")\n", nil},
	{"local development database url", ruleSecrets, "docker-compose.yml",
		"DATABASE_URL: postgres://postgres:postgres@localhost:5432/dev\nREDIS_URL: redis://:devpass123@redis:6379\n", nil},
	{"templated database url", ruleSecrets, "deploy/app.yaml",
		"DATABASE_URL: postgres://app:${DB_PASSWORD}@db.prod.internal:5432/app\n", nil},
	{"supabase anon key is public", ruleSecrets, ".env.example",
		"NEXT_PUBLIC_SUPABASE_ANON_KEY=@@JWT_ANON@@\n", nil},
	{"jwt.io sample token in docs", ruleSecrets, "docs/auth.md",
		"Example: `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`\n", nil},
	{"private key header without a key", ruleSecrets, "docs/tls.md",
		"Paste the key:\n\n    -----BEGIN RSA PRIVATE KEY-----\n    ...\n    -----END RSA PRIVATE KEY-----\n", nil},
	{"github token placeholder", ruleSecrets, ".github/workflows/ci.yml",
		"env:\n  GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}\n  EXAMPLE: ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", nil},
	{"kubernetes secret with a placeholder value", ruleSecrets, "k8s/dev-secret.yaml",
		"apiVersion: v1\nkind: Secret\nmetadata:\n  name: dev\ndata:\n  password: Y2hhbmdlbWU=\n", nil},
	{"keys whose values are not secrets", ruleSecrets, "config/auth.yaml",
		"password_reset_url: https://app.example.com/reset?token=1\ntoken_type: Bearer\npasswordMinLength: 12\nsecretName: app-secrets-v2\n", nil},
	{"slack webhook placeholder", ruleSecrets, "docs/alerts.md",
		"webhook: https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX\n", nil},
	{"secret reference in a kubernetes deployment", ruleSecrets, "k8s/deploy.yaml",
		"env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef: {name: db-credentials, key: password}\n", nil},
	{"a list of secret names in a pipeline", ruleSecrets, "ci/pipeline.yaml",
		"stages:\n  backup:\n    secrets: [DATABASE_URL]\n    password: DB_PASSWORD\n", nil},
	{"words, not a secret", ruleSecrets, "loadtest/healthz.js",
		"export function setup() {\n  return { token: \"from-setup\" };\n}\n", nil},
	{"a test value that names itself", ruleSecrets, "workers/logs_test.go",
		"const secret = \"tok-12345-very-secret\"\n", nil},
	{"stripe publishable key", ruleSecrets, ".env.example",
		"NEXT_PUBLIC_STRIPE_KEY=pk_live_51Habcdefghijklmnopqrstuv\n", nil},
	{"a function call is not a secret", ruleSecrets, "tests/wpt-patches/sign_verify.js.patch",
		"+        privateKeyBuffer: copyUint8Array(vector.privateKeyBuffer), // Uint8Array\n", nil},
	{"a method call in a config", ruleSecrets, "deploy/app.env",
		"API_TOKEN=vault.read(secret_path)\n", nil},
	{"a passphrase that names itself in release notes", ruleSecrets, "release notes/v0.46.0.md",
		"tls: {\n  key: open(\"key1.pem\"),\n  password: \"cert1-passphrase\",\n}\n", nil},
	{"documented mock values", ruleSecrets, "examples/secrets/mock_server.go",
		"mockSecrets := map[string]string{\n\t\"jwt-secret\": \"hmac-signing-key-abc123\",\n\t\"api-key\": \"mock-key-8f2d91c3\",\n}\n", nil},
	{"an invalid value in a test table", ruleSecrets, "internal/conf/saml_test.go",
		"{Enabled: true, PrivateKey: \"InvalidBase64!\"},\n", nil},
	{"the supabase cli's documented local service key", ruleSecrets, "packages/storage-js/test/storageApi.test.ts",
		"const KEY = '@@JWT_DEMO@@'\n", nil},
	{"a token from a localhost issuer", ruleSecrets, "src/lib/session.test.ts",
		"const token = '@@JWT_LOCAL@@'\n", nil},

	// GOV-002: Supabase service-role clients.
	{"service-role client in an API route (upper case: the seed's regex misses it)", ruleSupabase, "src/app/api/users/route.ts",
		"import { createClient } from '@supabase/supabase-js'\nconst supabase = createClient(process.env.SUPABASE_URL!, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n",
		[]string{"2:18 service-role-client"}},
	{"service-role client over several lines", ruleSupabase, "src/lib/supabase.ts",
		"export const admin = createClient(\n  process.env.NEXT_PUBLIC_SUPABASE_URL!,\n  process.env.SUPABASE_SERVICE_ROLE_KEY!,\n)\n",
		[]string{"1:22 service-role-client"}},
	{"service-role key through a variable", ruleSupabase, "src/app/actions.ts",
		"const serviceKey = process.env.SUPABASE_SERVICE_ROLE_KEY\nconst url = process.env.SUPABASE_URL\n\nexport const db = createClient(url, serviceKey)\n",
		[]string{"4:19 service-role-client"}},
	{"service-role client in python", ruleSupabase, "app/jobs/sync.py",
		"from supabase import create_client\nsupabase = create_client(url, os.environ[\"SUPABASE_SERVICE_ROLE_KEY\"])\n",
		[]string{"2:12 service-role-client"}},
	{"typed service-role client", ruleSupabase, "src/hooks/useAdmin.tsx",
		"export function useAdmin(serviceRoleKey: string) {\n  return createClient<Database>(URL, serviceRoleKey)\n}\n",
		[]string{"2:10 service-role-client"}},

	{"seed false alarm: a comment about service_role", ruleSupabase, "src/app/page.tsx",
		"// never call createClient with service_role in this file\nconst supabase = createClient(url, anonKey)\n", nil},
	{"seed false alarm: anon client with a remark on the same line", ruleSupabase, "src/app/feed/page.tsx",
		"const supabase = createClient(url, anonKey) // service_role lives in src/server\n", nil},
	{"service-role client under server/", ruleSupabase, "src/server/admin.ts",
		"export const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n", nil},
	{"service-role client under admin/", ruleSupabase, "app/admin/users/page.tsx",
		"const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n", nil},
	{"policy text naming service_role near an anon client", ruleSupabase, "src/lib/policies.ts",
		"export const policy = \"auth.role() = 'service_role'\"\nexport const client = createClient(url, anonKey)\n", nil},
	{"python service-role client under server/", ruleSupabase, "server/tasks.py",
		"supabase = create_client(url, os.environ[\"SUPABASE_SERVICE_ROLE_KEY\"])\n", nil},
	{"a redis createClient in a file that mentions service_role", ruleSupabase, "src/lib/cache.ts",
		"// keys: service_role tokens are never cached\nexport const redis = createClient({ url: process.env.REDIS_URL })\n", nil},
	{"server-only named in a string, not imported", ruleSupabase, "src/lib/db.ts",
		"const note = 'server-only'\nexport const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n",
		[]string{"2:22 service-role-client"}},
	{"an admin module outside admin/ (nextjs-subscription-payments)", ruleSupabase, "utils/supabase/admin.ts",
		"const supabaseAdmin = createClient<Database>(\n  process.env.NEXT_PUBLIC_SUPABASE_URL || '',\n  process.env.SUPABASE_SERVICE_ROLE_KEY || ''\n)\n", nil},
	{"a module that imports server-only", ruleSupabase, "src/lib/db.ts",
		"import 'server-only'\nimport { createClient } from '@supabase/supabase-js'\nexport const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n", nil},
	{"a module that requires server-only", ruleSupabase, "lib/db.js",
		"require(\"server-only\")\nconst admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY)\n", nil},
	{"server actions", ruleSupabase, "src/app/actions.ts",
		"'use server'\n\nexport async function purge() {\n  const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n}\n", nil},
	{"a .server.ts module", ruleSupabase, "app/lib/queries.server.ts",
		"export const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)\n", nil},

	// GOV-003: destructive migrations.
	{"drop a protected table", ruleMigrations, "supabase/migrations/001.sql",
		"DROP TABLE users;\n", []string{"1:12 drop-table"}},
	{"drop with if exists, schema, quotes and cascade", ruleMigrations, "supabase/migrations/002.sql",
		"-- cleanup\nDROP TABLE IF EXISTS public.\"payments\" CASCADE;\n", []string{"2:22 drop-table"}},
	{"truncate only with options", ruleMigrations, "db/migrate/003.sql",
		"TRUNCATE TABLE ONLY audit_log RESTART IDENTITY;\n", []string{"1:21 truncate"}},
	{"truncate a list", ruleMigrations, "db/migrate/004.sql",
		"truncate sessions, projects;\n", []string{"1:20 truncate"}},
	{"drop a column of a protected table", ruleMigrations, "migrations/005.sql",
		"ALTER TABLE IF EXISTS ONLY public.users\n  DROP COLUMN IF EXISTS email;\n", []string{"1:1 drop-column"}},
	{"drop a column without the COLUMN keyword", ruleMigrations, "migrations/006.sql",
		"ALTER TABLE users ADD COLUMN nickname text, DROP legacy_flag;\n", []string{"1:50 drop-column"}},
	{"drop inside a DO block", ruleMigrations, "migrations/007.sql",
		"DO $$\nBEGIN\n  DROP TABLE projects;\nEND\n$$;\n", []string{"3:14 drop-table"}},
	{"the second table of a list", ruleMigrations, "migrations/008.sql",
		"DROP TABLE sessions, users;\n", []string{"1:22 drop-table"}},
	{"mysql backquotes", ruleMigrations, "migrations/009.sql",
		"DROP TABLE `users`;\n", []string{"1:12 drop-table"}},

	{"seed false alarm: another table dropped in a file that mentions users", ruleMigrations, "supabase/migrations/010.sql",
		"DROP TABLE temp_import; -- users are untouched\n", nil},
	{"a table whose name starts like a protected one", ruleMigrations, "supabase/migrations/011.sql",
		"DROP TABLE IF EXISTS users_backup;\n", nil},
	{"commented out", ruleMigrations, "supabase/migrations/012.sql",
		"-- DROP TABLE users;\n/* DROP TABLE payments; /* nested */ still a comment */\nSELECT 1;\n", nil},
	{"string literal", ruleMigrations, "supabase/migrations/013.sql",
		"INSERT INTO audit_log (action) VALUES ('DROP TABLE users'), (E'TRUNCATE payments\\'s');\n", nil},
	{"drop an index named after a table", ruleMigrations, "supabase/migrations/014.sql",
		"DROP INDEX users_email_idx;\nDROP VIEW users_view;\n", nil},
	{"drop a constraint, not a column", ruleMigrations, "supabase/migrations/015.sql",
		"ALTER TABLE users DROP CONSTRAINT users_email_key;\nALTER TABLE users ALTER COLUMN email DROP NOT NULL;\n", nil},
	{"drop a column named after a protected table", ruleMigrations, "supabase/migrations/016.sql",
		"ALTER TABLE sessions DROP COLUMN users;\n", nil},
	{"schema-qualified other table", ruleMigrations, "supabase/migrations/017.sql",
		"DROP TABLE public.projects_old;\nDROP TABLE \"Users_archive\";\n", nil},
	{"a function body is not run by the migration", ruleMigrations, "supabase/migrations/018.sql",
		"CREATE FUNCTION reset_demo() RETURNS void AS $body$ TRUNCATE payments; $body$ LANGUAGE sql;\n", nil},
	{"dollar-quoted string", ruleMigrations, "supabase/migrations/019.sql",
		"SELECT $$DROP TABLE users;$$ AS example;\n", nil},
	{"a golang-migrate file", ruleMigrations, "db/000002_drop_payments.up.sql",
		"DROP TABLE payments;\n", []string{"1:12 drop-table"}},
	{"a flyway migration", ruleMigrations, "src/main/resources/db/migration/V3__cleanup.sql",
		"TRUNCATE users;\n", []string{"1:10 truncate"}},
	{"a statement over lines is reported from its first", ruleMigrations, "prisma/migrations/20240101_drop/migration.sql",
		"DROP TABLE IF EXISTS\n  public.users;\n", []string{"1:1 drop-table"}},
	{"a seed file is not a migration", ruleMigrations, "supabase/seed.sql",
		"TRUNCATE users, projects;\nINSERT INTO users (id) VALUES (1);\n", nil},
	{"a test's reset script is not a migration", ruleMigrations, "tests/reset.sql",
		"DROP TABLE IF EXISTS users CASCADE;\n", nil},
	{"an ad-hoc query is not a migration", ruleMigrations, "scripts/purge.sql",
		"TRUNCATE audit_log;\n", nil},

	// AI-001: nesting depth.
	{"four nested ifs in js", ruleNesting, "src/lib/price.js",
		"function price(a, b, c, d) {\n  if (a) {\n    if (b) {\n      if (c) {\n        if (d) {\n          return 1\n        }\n      }\n    }\n  }\n}\n",
		[]string{"2:3 nesting-depth"}},
	{"go: for, if, switch, if", ruleNesting, "internal/sync/merge.go",
		"package sync\n\nfunc merge(xs []int) {\n\tfor _, x := range xs {\n\t\tif x > 0 {\n\t\t\tswitch x {\n\t\t\tcase 1:\n\t\t\t\tif x%2 == 1 {\n\t\t\t\t\tprintln(x)\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n",
		[]string{"4:2 nesting-depth"}},
	{"python by indentation", ruleNesting, "app/rules.py",
		"def check(rows):\n    for row in rows:\n        if row:\n            while row.next:\n                if row.bad:\n                    return False\n    return True\n",
		[]string{"2:5 nesting-depth"}},
	{"bodies without braces", ruleNesting, "src/parse.c",
		"int f(int a, int b, int c) {\n  if (a) if (b) for (;;) if (c) return 1;\n  return 0;\n}\n",
		[]string{"2:3 nesting-depth"}},
	{"java try, for, if, while", ruleNesting, "src/main/java/App.java",
		"class App {\n  void run() {\n    try {\n      for (int i = 0; i < n; i++) {\n        if (ok(i)) {\n          while (more()) {\n            step();\n          }\n        }\n      }\n    } catch (Exception e) {\n    }\n  }\n}\n",
		[]string{"3:5 nesting-depth"}},
	{"rust match, if, for, loop", ruleNesting, "src/main.rs",
		"fn main() {\n    match x {\n        Some(v) => {\n            if v > 0 {\n                for i in 0..v {\n                    loop {\n                        break;\n                    }\n                }\n            }\n        }\n        None => {}\n    }\n}\n",
		[]string{"2:5 nesting-depth"}},

	{"a field named like a keyword (class) does not hide the nesting", ruleNesting, "internal/kw/kw.go",
		"package kw\n\nfunc f(words []string) {\n\tfor _, w := range words {\n\t\tfor i := 0; i < len(w); i++ {\n\t\t\tif k.class[w[i]] == 0 {\n\t\t\t\tif 'a' <= w[i] {\n\t\t\t\t\tk.class[w[i]] = 1\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n",
		[]string{"4:2 nesting-depth"}},

	{"an if, its else if and its else are one construct, one finding", ruleNesting, "src/lib/walk.js",
		"function f(xs) {\n  for (const x of xs) {\n    if (x) {\n      while (x.next) {\n        if (x.a) {\n          a()\n        } else if (x.b) {\n          b()\n        } else {\n          c()\n        }\n        if (x.d) {\n          d()\n        }\n      }\n    }\n  }\n}\n",
		[]string{"2:3 nesting-depth"}},
	{"go: the cases of one switch are one finding", ruleNesting, "internal/opts/opts.go",
		"package opts\n\nfunc f(m map[string]int) {\n\tfor k, v := range m {\n\t\tswitch k {\n\t\tcase \"a\":\n\t\t\tif v > 0 {\n\t\t\t\tif v > 1 {\n\t\t\t\t\tprintln(v)\n\t\t\t\t}\n\t\t\t}\n\t\tcase \"b\":\n\t\t\tif v < 0 {\n\t\t\t\tif v < -1 {\n\t\t\t\t\tprintln(v)\n\t\t\t\t} else {\n\t\t\t\t\tprintln(-v)\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n",
		[]string{"4:2 nesting-depth"}},
	{"python: if, elif and else are one construct", ruleNesting, "app/route.py",
		"def f(rows):\n    for r in rows:\n        if r:\n            while r.next:\n                if r.a:\n                    x()\n                elif r.b:\n                    y()\n                else:\n                    z()\n",
		[]string{"2:5 nesting-depth"}},
	{"two statements of a function are two constructs", ruleNesting, "src/lib/two.ts",
		"function f(a, b, c, d) {\n  if (a) {\n    if (b) {\n      if (c) {\n        if (d) { x() }\n      }\n    }\n  }\n  for (const y of a) {\n    for (const z of y) {\n      if (z) {\n        while (z.n) { z = z.n }\n      }\n    }\n  }\n}\n",
		[]string{"2:3 nesting-depth", "9:3 nesting-depth"}},

	{"try, catch and finally sit at their try's level", ruleNesting, "src/lib/try.js",
		"function f(xs) {\n  for (const x of xs) {\n    if (x) {\n      try {\n        run(x)\n      } catch (e) {\n        log(e)\n      } finally {\n        done(x)\n      }\n    }\n  }\n}\n", nil},
	{"python: elif and else at depth 3 are flat", ruleNesting, "app/flat.py",
		"def f(rows):\n    for r in rows:\n        if r.a:\n            try:\n                x()\n            except E:\n                y()\n        elif r.b:\n            z()\n        else:\n            w()\n", nil},
	{"go: else if chains inside a loop are flat", ruleNesting, "internal/cls/cls.go",
		"package cls\n\nfunc f(xs []int) {\n\tfor _, x := range xs {\n\t\tif x > 2 {\n\t\t\tprintln(2)\n\t\t} else if x > 1 {\n\t\t\tif x == 1 {\n\t\t\t\tprintln(1)\n\t\t\t}\n\t\t} else {\n\t\t\tprintln(0)\n\t\t}\n\t}\n}\n", nil},
	{"a long else-if chain is flat", ruleNesting, "src/lib/grade.ts",
		"export function grade(s: number) {\n  if (s > 90) {\n    return 'A'\n  } else if (s > 80) {\n    return 'B'\n  } else if (s > 70) {\n    return 'C'\n  } else if (s > 60) {\n    return 'D'\n  } else if (s > 50) {\n    return 'E'\n  } else {\n    return 'F'\n  }\n}\n", nil},
	{"a callback starts again from zero", ruleNesting, "src/lib/sync.ts",
		"if (a) {\n  for (const x of xs) {\n    if (x) {\n      items.forEach((item) => {\n        if (item.ok) {\n          if (item.ready) {\n            send(item)\n          }\n        }\n      })\n    }\n  }\n}\n", nil},
	{"braces in strings, comments, templates and regexes", ruleNesting, "src/lib/fmt.js",
		"if (a) {\n  const s = \"{{{{ if (x) {\"; /* { if (y) { */\n  const t = `${ {a: 1}.a } { if {`\n  const r = /[{]if\\{/g\n  if (b) {\n    if (c) {\n      run(s, t, r)\n    }\n  }\n}\n", nil},
	{"nested object literals are not control flow", ruleNesting, "src/config.ts",
		"if (prod) {\n  config = {\n    db: {\n      pool: {\n        limits: { max: 10, idle: { ms: 1000 } },\n      },\n    },\n  }\n}\n", nil},
	{"python dicts, with blocks and colons", ruleNesting, "app/settings.py",
		"CONFIG = {\n    'a': {\n        'b': {'c': 1},\n    },\n}\n\ndef load(path):\n    with open(path) as f:\n        for line in f:\n            if line:\n                with lock:\n                    data[line[1:]] = True\n",
		nil},
	{"go switch with ifs in its cases", ruleNesting, "internal/route/route.go",
		"package route\n\nfunc route(m string) int {\n\tswitch m {\n\tcase \"GET\":\n\t\tif cached {\n\t\t\treturn 1\n\t\t}\n\tcase \"POST\":\n\t\tif valid {\n\t\t\treturn 2\n\t\t}\n\t}\n\treturn 0\n}\n", nil},
	{"python defs inside ifs start again", ruleNesting, "app/handlers.py",
		"if FEATURE:\n    for name in NAMES:\n        if name:\n            def handler(req):\n                if req.ok:\n                    if req.user:\n                        return True\n", nil},
	{"semicolon-free guard clauses are flat", ruleNesting, "src/lib/guard.js",
		"function f(a, b, c, d) {\n  if (!a) return\n  if (!b) return\n  if (!c) return\n  if (!d) return\n  for (const x of a) {\n    if (x) {\n      work(x)\n    }\n  }\n}\n", nil},
	{"c# foreach with verbatim strings", ruleNesting, "src/Report.cs",
		"class Report {\n  void Build() {\n    foreach (var r in rows) {\n      if (r.Ok) {\n        var s = @\"{{ if (x) { \"\"quoted\"\" {\";\n        while (more) {\n          Emit(s);\n        }\n      }\n    }\n  }\n}\n", nil},

	// AI-002: AI TODO markers.
	{"TODO(ai) in a ts comment", ruleMarkers, "src/lib/retry.ts",
		"export async function retry() {\n  // TODO(ai): handle the error case\n}\n", []string{"2:6 ai-todo-marker"}},
	{"TODO(copilot) in python", ruleMarkers, "app/forms.py",
		"def validate(form):\n    # TODO(copilot): validate input\n    return True\n", []string{"2:7 ai-todo-marker"}},
	{"AI-TODO in a go block comment", ruleMarkers, "internal/auth/auth.go",
		"package auth\n\n/*\n AI-TODO: wire up the session check\n*/\nfunc Check() bool { return true }\n", []string{"4:2 ai-todo-marker"}},
	{"an elision left by an assistant", ruleMarkers, "src/app/layout.tsx",
		"export default function Layout() {\n  // ... existing code ...\n  return null\n}\n", []string{"2:6 ai-todo-marker"}},
	{"TODO(claude) in sql", ruleMarkers, "supabase/migrations/020.sql",
		"-- TODO(claude): backfill the new column\nALTER TABLE orders ADD COLUMN note text;\n", []string{"1:4 ai-todo-marker"}},
	{"rest of the implementation in a docstring", ruleMarkers, "app/service.py",
		"def sync():\n    \"\"\"Sync accounts.\n\n    Rest of the implementation goes here.\n    \"\"\"\n", []string{"4:5 ai-todo-marker"}},
	{"FIXME(gpt) in a yaml comment", ruleMarkers, "deploy/limits.yaml",
		"limits:\n  cpu: 2 # FIXME(gpt): tune these limits\n", []string{"2:12 ai-todo-marker"}},

	{"an ordinary TODO", ruleMarkers, "src/lib/cache.ts",
		"// TODO: refactor once JIRA-123 lands\nexport const ttl = 60\n", nil},
	{"a marker inside a string literal", ruleMarkers, "src/lib/msg.ts",
		"const msg = \"TODO(ai): not a comment\"\nconst other = '// TODO(ai) still a string'\n", nil},
	{"a marker in prose", ruleMarkers, "README.md",
		"Search the code for TODO(ai) markers before you merge.\n", nil},
	{"identifiers that contain todo", ruleMarkers, "src/app/todos.ts",
		"todoList.push(item)\nconst todoAiSuggestions = []\n", nil},
	{"a TODO for a person named Aidan", ruleMarkers, "src/lib/names.ts",
		"// TODO(aidan): rename this module\nexport {}\n", nil},
	{"a python string", ruleMarkers, "app/prompts.py",
		"PROMPT = 'Mark gaps with TODO(ai) so we can find them'\n", nil},
	{"existing code without an elision", ruleMarkers, "src/lib/v1.ts",
		"// keep the existing code path for v1 clients\nexport const v1 = true\n", nil},
	{"json has no comments", ruleMarkers, "config/tasks.json",
		"{\"note\": \"TODO(ai): summarise\"}\n", nil},
}

func TestRuleCases(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			fs := e.ScanFile(c.file, []byte(withFakes(c.content)))
			var got []string
			for _, f := range fs {
				if c.want == nil || f.Rule == c.rule {
					got = append(got, fmt.Sprintf("%d:%d %s", f.Line, f.Column, f.Detector))
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: got %q, want %q", c.file, got, c.want)
				for _, f := range fs {
					t.Logf("  %s %s:%d:%d %s: %s | %s", f.Rule, f.File, f.Line, f.Column, f.Detector, f.Message, f.Excerpt)
				}
			}
		})
	}
}

// Every rule stays silent on at least as many traps as it has true cases.
func TestRuleCasesHaveTraps(t *testing.T) {
	trues, traps := map[string]int{}, map[string]int{}
	for _, c := range cases {
		if c.want == nil {
			traps[c.rule]++
		} else {
			trues[c.rule]++
		}
	}
	for _, r := range []string{ruleSecrets, ruleSupabase, ruleMigrations, ruleNesting, ruleMarkers} {
		if trues[r] == 0 || traps[r] < trues[r] {
			t.Errorf("%s: %d true cases, %d traps; want some, and at least as many traps", r, trues[r], traps[r])
		}
	}
}

// No output of a finding holds a secret whole.
func TestCaseExcerptsAreRedacted(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		for _, f := range e.ScanFile(c.file, []byte(withFakes(c.content))) {
			if name := leakedFake(f.Excerpt + f.Message); name != "" {
				t.Errorf("%s: finding %s shows %s: %q", c.name, f.Detector, name, f.Excerpt)
			}
		}
	}
}
