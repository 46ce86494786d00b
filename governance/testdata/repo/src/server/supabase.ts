import { createClient } from '@supabase/supabase-js'

// Server-only module: the service-role client belongs here.
export const admin = createClient(process.env.SUPABASE_URL!, process.env.SUPABASE_SERVICE_ROLE_KEY!)
