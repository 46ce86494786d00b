// service_role lives in utils/supabase/admin.ts, never here
export const supabase = createClient(url, anonKey)
