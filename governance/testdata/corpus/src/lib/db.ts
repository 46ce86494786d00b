import 'server-only'
import { createClient } from '@supabase/supabase-js'

export const admin = createClient(process.env.SUPABASE_URL!, process.env.SUPABASE_SERVICE_ROLE_KEY!)
