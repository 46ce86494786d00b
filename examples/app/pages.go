package app

import (
	"fmt"
	"html/template"
)

// pages are the HTML views. They need no JavaScript and load nothing else (the favicon is
// inline), so a browser journey sees no console errors.
var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"money": func(amount int64, currency string) string {
		return formatMoney(amount) + " " + currency
	},
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>{{.Title}}</title></head>
<body data-version="{{.Version}}">
<header><a href="/payments">Payments</a> · <a href="/payments/new">New payment</a>
{{if .User}}<span id="user">Signed in as {{.User}}</span>{{else}}<a href="/login">Sign in</a>{{end}}</header>
<main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{end}}

{{define "foot"}}</main><footer>version {{.Version}}</footer></body></html>
{{end}}

{{define "login"}}{{template "head" .}}
<form method="post" action="/login">
<label>User <input name="user" id="user-input" autocomplete="username"></label>
<label>Password <input name="password" id="password-input" type="password" autocomplete="current-password"></label>
<button type="submit" id="login-submit">Sign in</button>
</form>
{{template "foot" .}}{{end}}

{{define "list"}}{{template "head" .}}
{{if .Payments}}<table id="payments">
<thead><tr><th>ID</th><th>Status</th><th>Amount</th><th>Description</th><th>Created</th></tr></thead>
<tbody>{{range .Payments}}<tr>
<td><a href="/payments/{{.ID}}">{{.ID}}</a></td><td class="status">{{.Status}}</td>
<td>{{money .Amount .Currency}}</td><td>{{.Description}}</td><td>{{.CreatedAt.Format "2006-01-02T15:04:05Z07:00"}}</td>
</tr>{{end}}</tbody></table>
{{else}}<p id="empty">No payments yet.</p>{{end}}
<p><a href="/payments/new" id="new-payment">New payment</a></p>
{{template "foot" .}}{{end}}

{{define "new"}}{{template "head" .}}
<form method="post" action="/payments/new">
<label>Amount (minor units) <input name="amount" id="amount" inputmode="numeric"></label>
<label>Currency <input name="currency" id="currency" value="USD"></label>
<label>Description <input name="description" id="description"></label>
<button type="submit" id="create">Create payment</button>
</form>
{{template "foot" .}}{{end}}

{{define "show"}}{{template "head" .}}
<dl id="payment">
<dt>ID</dt><dd id="payment-id">{{.Payment.ID}}</dd>
<dt>Status</dt><dd id="payment-status">{{.Payment.Status}}</dd>
<dt>Amount</dt><dd id="payment-amount">{{money .Payment.Amount .Payment.Currency}}</dd>
<dt>Description</dt><dd id="payment-description">{{.Payment.Description}}</dd>
<dt>Created</dt><dd id="payment-created">{{.Payment.CreatedAt.Format "2006-01-02T15:04:05Z07:00"}}</dd>
</dl>
<p><a href="/payments">Back to payments</a></p>
{{template "foot" .}}{{end}}

{{define "missing"}}{{template "head" .}}
<p>There is no such payment.</p>
{{template "foot" .}}{{end}}
`))

// formatMoney renders minor units with two decimals: 1250 -> "12.50".
func formatMoney(amount int64) string {
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d", sign, amount/100, amount%100)
}
