export function useAdmin(serviceRoleKey: string) {
  return createClient<Database>(URL, serviceRoleKey) // want GOV-002
}
