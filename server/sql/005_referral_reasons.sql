-- The reasons a referral gives (referral.received's repeated ReferralReason), so that the
-- monitor can break M1 down by reason (issue 3: "referrals by source and reason"): bit r set
-- for each reason value r given, NULL when none was. Merged like service and referral_source
-- (last writer wins among the case's referral.received events). Cases stored before this
-- migration have NULL: their reasons count as not recorded.
ALTER TABLE case_state ADD COLUMN referral_reasons int;
