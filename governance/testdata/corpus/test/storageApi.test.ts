// The local development key the Supabase CLI prints.
const KEY = '@@JWT_DEMO@@'
const session = { access_token: '@@JWT_LOCAL@@' }

test('lists buckets', async () => {
  expect(await storage(KEY, session).listBuckets()).toBeDefined()
})
