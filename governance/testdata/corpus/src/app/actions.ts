'use server'

export async function deleteAccount(id: string) {
  const admin = createClient(url, process.env.SUPABASE_SERVICE_ROLE_KEY!)
  await admin.auth.admin.deleteUser(id)
}
