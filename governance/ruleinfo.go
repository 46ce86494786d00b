package governance

import "path/filepath"

// ruleInfos describes the enabled rules, built-in first, for SARIF and JUnit.
func (e *Engine) ruleInfos(rs *RuleSet) []RuleInfo {
	var out []RuleInfo
	if e.packs[PackSecrets] {
		out = append(out, RuleInfo{
			ID: ruleSecrets, Name: "HardcodedSecret", Pack: PackSecrets, Severity: SeverityHigh, Security: true,
			Description: "A secret (API key, token, private key, password) is committed in the tree.",
			Help: "Remove the secret from the code and its history, rotate it (assume it leaked), and read " +
				"it from the environment or a secret store at run time. Detectors: Stripe, AWS, GitHub, Slack, " +
				"private keys, JWTs, passwords in URLs, generic secret assignments; placeholders and " +
				"environment references are not reported.",
		})
	}
	if e.packs[PackSupabase] {
		out = append(out, RuleInfo{
			ID: ruleSupabase, Name: "SupabaseServiceRoleOutsideServer", Pack: PackSupabase, Severity: SeverityHigh, Security: true,
			Description: "A Supabase client is created with the service-role key outside server-only code.",
			Help: "The service-role key bypasses row level security. Create such clients only in " +
				"server-only modules (admin/ and server/ directories, admin.ts modules, *.server.ts files, " +
				"files that import \"server-only\", or the paths in service_role_paths) and use the anon " +
				"key with RLS everywhere else.",
		})
	}
	if e.packs[PackMigrations] {
		out = append(out, RuleInfo{
			ID: ruleMigrations, Name: "DestructiveMigrationOnProtectedTable", Pack: PackMigrations, Severity: SeverityHigh, Security: true,
			Description: "A migration drops or truncates a protected table, or drops one of its columns.",
			Help: "Protected tables hold data that cannot be rebuilt. Rename or archive instead, " +
				"migrate in expand/contract steps, or suppress with `-- sluice:ignore GOV-003 <reason>` " +
				"after review. The list is protected_tables in the rules file.",
		})
	}
	if e.packs[PackAIMarkers] {
		out = append(out,
			RuleInfo{
				ID: ruleNesting, Name: "DeepNesting", Pack: PackAIMarkers, Severity: SeverityInfo,
				Description: "Control flow is nested too deep.",
				Help: "Deeply nested conditionals hide defects, and assistants produce them readily. " +
					"Return early, invert conditions, or extract a function. One finding per construct " +
					"(a statement at the top of a function and what is nested in it); an else if chain " +
					"is one level. A construct reaching the limit (nesting_limit, default 4) or one level " +
					"more is info, two more low, three or more medium; rule_severity in the rules file " +
					"sets one severity for all.",
			},
			RuleInfo{
				ID: ruleMarkers, Name: "UnresolvedAIMarker", Pack: PackAIMarkers, Severity: SeverityMedium,
				Description: "A comment left by an AI assistant marks unfinished or elided code.",
				Help: "Markers such as TODO(ai) or '... existing code ...' mean the change is not " +
					"complete. Write the missing code, then remove the marker.",
			})
	}
	for _, r := range rs.custom {
		out = append(out, RuleInfo{
			ID: r.rule, Name: r.rule, Pack: "custom", Severity: r.severity, Security: r.secret,
			Description: cmpOr(r.description, r.title), Help: cmpOr(r.description, r.title) + " (custom rule from " + filepath.Base(rs.File) + ")",
		})
	}
	for i := range out {
		if sev, ok := rs.RuleSeverity[out[i].ID]; ok {
			out[i].Severity = sev
		}
	}
	return out
}
